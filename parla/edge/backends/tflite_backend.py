"""TFLite through ai-edge-litert (tflite-runtime as a fallback): XNNPACK threads, external delegates by path
(e.g. libedgetpu.so.1 for a Coral). Full-int8 models take int8 input: quantised here with the tensor's scale."""

from __future__ import annotations

import json

import numpy as np

from parla.edge.backends.base import Backend, corrupt
from parla.errors import ParlaError


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter

            return interpreter
        except ImportError as e:
            raise ParlaError(
                "TFLite runtime missing: pip install 'parla[tflite]' (ai-edge-litert) or tflite-runtime"
            ) from e


def read_metadata(path) -> dict[str, str]:
    """The ``parla`` metadata entry of a .tflite flatbuffer (empty if none)."""
    try:
        from ai_edge_litert.tools import flatbuffer_utils as fb
    except ImportError:
        return {}
    model = fb.read_model(str(path))
    for m in model.metadata or []:
        name = m.name.decode() if isinstance(m.name, bytes) else m.name
        if name == "parla":
            return json.loads(bytes(np.asarray(model.buffers[m.buffer].data, np.uint8)).decode())
    return {}


class TfliteBackend(Backend):
    name = "tflite"

    def __init__(self, path, device: str = "cpu", threads: int | None = None, delegate: str | None = None) -> None:
        super().__init__(path, device, threads)
        tfl = _interpreter_module()
        delegates = []
        if device != "cpu":
            if not delegate:
                raise ParlaError(
                    f"tflite: device {device!r} needs an external delegate library path "
                    "(e.g. libedgetpu.so.1 for an Edge TPU)"
                )
            try:
                delegates = [tfl.load_delegate(delegate)]
            except (ValueError, OSError) as e:
                raise ParlaError(f"tflite: cannot load delegate {delegate} for {device}: {e}") from e
        try:
            self.meta = read_metadata(self.path)
            self.interp = tfl.Interpreter(
                model_path=str(self.path), num_threads=threads, experimental_delegates=delegates or None
            )
            self.interp.allocate_tensors()
        except Exception as e:  # flatbuffers raises struct.error / IndexError, the interpreter ValueError
            raise corrupt(self.path, e) from e
        self._check_meta()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.inp["dtype"] != np.float32:
            scale, zero = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.inp["dtype"])
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if self.out["dtype"] != np.float32:
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y
