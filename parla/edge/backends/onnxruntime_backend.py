"""onnxruntime: CPU (and the CUDA / TensorRT execution providers where installed)."""

from __future__ import annotations

import numpy as np

from parla.edge.backends.base import Backend, corrupt
from parla.errors import ParlaError, require

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__(path, device, threads)
        ort = require("onnxruntime", "onnx")
        if device not in PROVIDERS:
            raise ParlaError(f"onnxruntime: unknown device {device!r}; one of {', '.join(PROVIDERS)}")
        if PROVIDERS[device] not in ort.get_available_providers():
            raise ParlaError(
                f"onnxruntime: {PROVIDERS[device]} is not available in this onnxruntime build "
                f"(install onnxruntime-gpu for cuda/tensorrt, or use device cpu)"
            )
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # No spin-waiting between calls: in the frame loop the host warp runs between refiner calls, and spinning
        # pool threads took its cores (warp p50 8.5 ms beside onnxruntime vs 4.3 ms beside OpenVINO on 2 cores).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            so.intra_op_num_threads = threads
        try:
            self.sess = ort.InferenceSession(str(self.path), so, providers=[PROVIDERS[device]])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise corrupt(self.path, e) from e
        self.meta = dict(self.sess.get_modelmeta().custom_metadata_map)
        self._check_meta()
        self.input = self.sess.get_inputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.input: x})[0]
