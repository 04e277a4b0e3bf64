"""The one table of export formats (DESIGN §5): export, the CLI, the backends, tests and benchmarks read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # the model file's suffix (OpenVINO: .xml with a .bin beside it)
    precisions: tuple[str, ...]  # what `parla export` can write
    runtime: str  # Python module of the runtime that loads it
    extra: str  # pip extra that installs the runtime
    devices: tuple[str, ...]
    exporter: str  # Python module needed to write it (the export extra)


FORMATS: dict[str, Format] = {
    "torch": Format("torch", ".safetensors", ("fp32", "bf16"), "torch", "train", ("cuda", "cpu"), "torch"),
    "onnx": Format("onnx", ".onnx", ("fp32", "int8"), "onnxruntime", "onnx", ("cpu", "cuda", "tensorrt"),
                   "onnxscript"),
    "openvino": Format("openvino", ".xml", ("fp32", "fp16", "int8"), "openvino", "openvino", ("CPU", "GPU", "NPU"),
                       "nncf"),
    "tflite": Format("tflite", ".tflite", ("fp32", "w8", "int8"), "ai_edge_litert", "tflite",
                     ("cpu", "edgetpu", "nnapi", "gpu"), "litert_torch"),
}
EXPORTABLE = ("onnx", "openvino", "tflite")
# The most accurate-for-speed precision of each format, shipped in parla/assets/student (docs/export.md).
BEST = {"onnx": "int8", "openvino": "int8", "tflite": "int8"}


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
