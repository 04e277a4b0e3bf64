"""torch: the FP32 / BF16 reference, on CPU or CUDA, straight from a model folder's safetensors (no export).

Same interface as the exported-model backends: the refiner takes x (1, 9, r, r) -> (1, 4, r, r) and the lips
net a normalised mel window (1, 80, W) -> (1, K, W).
"""

from __future__ import annotations

import json

import numpy as np

from parla.edge.backends.base import Backend
from parla.errors import ParlaError, require
from parla.formats import MOTION_WINDOW


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        path,
        device: str = "cpu",
        threads: int | None = None,
        *,
        kind: str = "refiner",
        net: str = "student",
        precision: str = "fp32",
    ) -> None:
        from parla.modelfolder import ModelFolder

        folder = ModelFolder(path)
        self.path, self.device, self.threads = folder.path, device, threads
        torch = require("torch", "train")
        from parla.models.refiner import edge_module

        if device == "cuda" and not torch.cuda.is_available():
            raise ParlaError(
                "torch: device cuda requested but no CUDA GPU is visible to this torch build "
                "(install a CUDA build of torch, or use device cpu)"
            )
        if device not in ("cpu", "cuda"):
            raise ParlaError(f"torch: unknown device {device!r}; one of cpu, cuda")
        if precision not in ("fp32", "bf16"):
            raise ParlaError(f"torch: precision {precision!r}; the reference runs fp32 or bf16")
        if threads:
            torch.set_num_threads(threads)
        self.dev, self._precision = torch.device(device), precision
        if kind == "refiner":
            g, cfg = folder.refiner(net)
            self.module = edge_module(g).to(self.dev)
            shape = [1, 6 + cfg.cond, cfg.res, cfg.res]
            self.meta = {
                "parla.model": "refiner",
                "parla.refiner_config": json.dumps(cfg.to_dict()),
                "parla.shape": json.dumps(shape),
                "parla.version": folder.version(net),
            }
        else:
            m, cfg = folder.lipnet()
            self.module = m.to(self.dev)
            self.meta = {
                "parla.model": "motion",
                "parla.shape": json.dumps([1, cfg.n_mels, MOTION_WINDOW]),
                "parla.version": folder.version(),
            }
        self.meta["parla.precision"] = precision
        self._torch = torch

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(x, np.float32))

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad(), torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self._precision == "bf16"):
            y = self.module(torch.from_numpy(x).to(self.dev))
        return y.float().cpu().numpy()
