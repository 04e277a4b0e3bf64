"""torch: the FP32 / BF16 reference, on CPU or CUDA, straight from a model folder's safetensors (no export).

Same interface as the exported-model backends: the refiner takes x (1, 9, r, r) -> (1, 4, r, r) and the motion
net a normalised mel window (1, 80, W) -> (1, K, W).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from parla.edge.backends.base import Backend
from parla.errors import ModelNotFoundError, ParlaError, require


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path, device: str = "cpu", threads: int | None = None, *, kind: str = "refiner",
                 net: str = "student", precision: str = "fp32") -> None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"{folder}: the torch backend needs a model folder (config.json + safetensors)")
        self.path, self.device, self.threads = folder, device, threads
        torch = require("torch", "train")
        from parla.export.exporter import edge_module
        from parla.models.motion import MotionConfig, MotionNet
        from parla.models.refiner import Refiner, RefinerConfig
        from parla.training.checkpoint import load_weights

        if device == "cuda" and not torch.cuda.is_available():
            raise ParlaError("torch: device cuda requested but no CUDA GPU is visible to this torch build "
                             "(install a CUDA build of torch, or use device cpu)")
        if precision not in ("fp32", "bf16"):
            raise ParlaError(f"torch: precision {precision!r}; the reference runs fp32 or bf16")
        if threads:
            torch.set_num_threads(threads)
        config = json.loads((folder / "config.json").read_text())
        self.dev, self._precision = torch.device(device), precision
        if kind == "refiner":
            section = config["student"]["refiner"] if net == "student" else config["refiner"]
            cfg = RefinerConfig.from_dict(section)
            g = Refiner(cfg).eval()
            load_weights(g, folder / ("student.safetensors" if net == "student" else "refiner.safetensors"))
            self.module = edge_module(g).to(self.dev)
            shape = [1, 6 + cfg.cond, cfg.res, cfg.res]
            version = config["student"]["version"] if net == "student" else config.get("version", "unknown")
            self.meta = {"parla.model": "refiner", "parla.refiner_config": json.dumps(cfg.to_dict()),
                         "parla.shape": json.dumps(shape), "parla.version": version}
        else:
            m = MotionNet(MotionConfig.from_dict(config["motion"])).eval()
            load_weights(m, folder / "motion.safetensors")
            self.module = m.to(self.dev)
            self.meta = {"parla.model": "motion", "parla.shape": json.dumps([1, m.cfg.n_mels, 64]),
                         "parla.version": config.get("version", "unknown")}
        self.meta["parla.precision"] = precision
        self._torch = torch

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(x, np.float32))

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad(), torch.autocast(self.dev.type, dtype=torch.bfloat16,
                                             enabled=self._precision == "bf16"):
            y = self.module(torch.from_numpy(x).to(self.dev))
        return y.float().cpu().numpy()
