"""The one table of model formats (DESIGN §5). Export, the runtime backends, config validation, bench, tests and
the CLI's choices read it; code looks a format up by name (``FORMATS["openvino"]``) or by its runtime backend
(``by_backend("openvino")``), never by position. numpy-free: importing it loads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

MOTION_WINDOW = 64  # mel frames (0.64 s) per call of the audio->lips net: above its receptive field (37)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # the model file's suffix (OpenVINO: .xml with a .bin beside it)
    precisions: tuple[str, ...]  # what `parla export` can write (torch: what the reference runs)
    backend: str  # the runtime backend's name in a firmware config (`backend:`)
    runtime: str  # Python module of the runtime that loads it
    backend_class: str  # "module:Class" of the backend that runs it (imported lazily)
    extra: str  # pip extra that installs the runtime
    devices: tuple[str, ...]  # device names the backend accepts
    cpu_device: str  # the backend's name for the host CPU (the fallback device)
    exporter: str  # Python module needed to write it (the export extra)
    best: str | None  # the precision shipped in the package's model folder (None: not exported)
    motion_window: int = MOTION_WINDOW  # mel frames per call of its audio->lips net


FORMATS: dict[str, Format] = {
    "torch": Format(
        "torch",
        ".safetensors",
        ("fp32", "bf16"),
        "torch",
        "torch",
        "parla.edge.backends.torch_backend:TorchBackend",
        "train",
        ("cpu", "cuda"),
        "cpu",
        "torch",
        None,
    ),
    "onnx": Format(
        "onnx",
        ".onnx",
        ("fp32", "int8"),
        "onnxruntime",
        "onnxruntime",
        "parla.edge.backends.onnxruntime_backend:OnnxRuntimeBackend",
        "onnx",
        ("cpu", "cuda", "tensorrt"),
        "cpu",
        "onnxscript",
        "int8",
    ),
    "openvino": Format(
        "openvino",
        ".xml",
        ("fp32", "fp16", "int8"),
        "openvino",
        "openvino",
        "parla.edge.backends.openvino_backend:OpenVinoBackend",
        "openvino",
        ("CPU", "GPU", "NPU"),
        "CPU",
        "nncf",
        "int8",
    ),
    "tflite": Format(
        "tflite",
        ".tflite",
        ("fp32", "w8", "int8"),
        "tflite",
        "ai_edge_litert",
        "parla.edge.backends.tflite_backend:TfliteBackend",
        "tflite",
        ("cpu", "edgetpu", "nnapi", "gpu"),
        "cpu",
        "litert_torch",
        "int8",
    ),
}
EXPORTABLE = tuple(name for name, f in FORMATS.items() if f.best)
BACKENDS = tuple(f.backend for f in FORMATS.values())


def by_backend(backend: str) -> Format:
    for f in FORMATS.values():
        if f.backend == backend:
            return f
    from parla.errors import ParlaError

    raise ParlaError(f"unknown backend {backend!r}; one of: {', '.join(BACKENDS)}")


def by_suffix(suffix: str) -> Format:
    for f in FORMATS.values():
        if f.suffix == suffix and f.name != "torch":
            return f
    from parla.errors import ParlaError

    raise ParlaError(f"unknown model format {suffix!r} (expected {', '.join(FORMATS[n].suffix for n in EXPORTABLE)})")


def model_filename(fmt: str, precision: str, model: str = "refiner") -> str:
    return f"{model}_{precision}{FORMATS[fmt].suffix}"


def check(fmt: str, precision: str) -> Format:
    """The format's row, or a clear error for an unknown format or a precision it lacks."""
    from parla.errors import ParlaError

    if fmt not in FORMATS:
        raise ParlaError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    f = FORMATS[fmt]
    if precision not in f.precisions:
        raise ParlaError(f"format {fmt} has no {precision} precision; one of: {', '.join(f.precisions)}")
    return f
