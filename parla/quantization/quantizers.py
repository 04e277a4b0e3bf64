"""The INT8 quantizers, one per format, each calibrated on real frames (``parla.quantization.calibration``):

- ONNX: onnxruntime static QDQ (u8 activations, s8 per-channel weights);
- OpenVINO: NNCF post-training quantization (mixed preset);
- TFLite: ai-edge-quantizer, dynamic-range ``w8`` or static full-integer ``int8`` (int8 in and out).

``parla.export.exporter`` converts the FP32 graph and calls these. Runtimes are imported lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parla.errors import require


def quantize_onnx(fp32: Path, out: Path, calib: np.ndarray, input_name: str) -> None:
    """An FP32 ONNX file -> a QDQ INT8 file; ``calib``: (N, ...) inputs without the batch axis."""
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_name(out.stem + ".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {input_name: x[None].astype(np.float32)}

    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    pre.unlink()


def quantize_openvino(model, calib: np.ndarray):
    """An OpenVINO model -> NNCF post-training INT8 (FakeQuantize) model."""
    nncf = require("nncf", "export")
    return nncf.quantize(
        model,
        nncf.Dataset(list(calib), lambda x: x[None].astype(np.float32)),
        subset_size=len(calib),
        preset=nncf.QuantizationPreset.MIXED,
    )


def quantize_tflite(fp32: Path, out: Path, precision: str, calib: np.ndarray) -> None:
    """An FP32 .tflite -> ``w8`` (dynamic-range weights) or ``int8`` (full integer, calibrated)."""
    require("ai_edge_quantizer", "export")
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(fp32))
    if precision == "w8":
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        result = q.quantize(enable_progress_report=False)
    else:
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        name = _tflite_input_name(fp32)
        stats = q.calibrate({"serving_default": [{name: x[None].astype(np.float32)} for x in calib]}, num_threads=2)
        result = q.quantize(stats, enable_progress_report=False)
    result.export_model(str(out), overwrite=True)


def _tflite_input_name(path: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_path=str(path)).get_signature_list()["serving_default"]
    return sig["inputs"][0]
