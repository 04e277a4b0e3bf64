"""OpenVINO: devices CPU, GPU, NPU (static shapes); f32 inference precision unless asked otherwise."""

from __future__ import annotations

import numpy as np

from parla.edge.backends.base import Backend, corrupt
from parla.errors import ParlaError, require


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path, device: str = "CPU", threads: int | None = None, hint: str = "f32") -> None:
        super().__init__(path, device.upper(), threads)
        ov = require("openvino", "openvino")
        core = ov.Core()
        if self.device not in core.available_devices:
            raise ParlaError(
                f"openvino: device {self.device} not found (available: "
                f"{', '.join(core.available_devices)}); install its driver or use device CPU"
            )
        try:
            model = core.read_model(str(self.path))
        except Exception as e:
            raise corrupt(self.path, e) from e
        rt = model.get_rt_info()
        items = dict(rt["parla"]).items() if "parla" in rt else ()
        self.meta = {f"parla.{k}": v.astype(str) for k, v in items}
        self._check_meta()
        config: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": hint} if self.device == "CPU" else {}
        if threads and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as e:
            raise ParlaError(
                f"openvino: cannot compile {self.path.name} for {self.device}: {str(e).splitlines()[0][:200]}"
            ) from e
        self.request = self.compiled.create_infer_request()

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: x})[0])
