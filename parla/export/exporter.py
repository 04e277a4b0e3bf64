"""Export the refiner (and the audio->motion net) to ONNX, OpenVINO IR and TFLite at each precision.

The exported refiner is one static-shape graph: x (1, 9, r, r) float32 NCHW -> y (1, 4, r, r) float32
(channels of x: warped RGB, source RGB in [-1, 1], driving-landmark maps in [0, 1]; of y: RGB in [-1, 1] and the
blend mask in [0, 1]). Batch 1 and static shapes, as NPUs want. Every file carries its own metadata
(``parla.*`` keys: version, config, layout, normalisation) so that a runtime needs no side channel.
INT8 is calibrated on real frames (``parla.quantization.calibration``) by the quantizers of
``parla.quantization.quantizers``; this module converts (one exporter per format) and writes the metadata.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from parla.errors import ParlaError, require
from parla.formats import MOTION_WINDOW, check, model_filename

log = logging.getLogger(__name__)
INPUT, OUTPUT = "x", "y"
LAYOUT = (
    "x: (1, 9, R, R) float32 NCHW; channels 0-2 warped RGB and 3-5 source RGB in [-1, 1] (pixel / 127.5 - 1), "
    "6-8 driving-landmark maps (inner mouth, eyes, outline) in [0, 1]. y: (1, 4, R, R); channels 0-2 refined "
    "RGB in [-1, 1], 3 blend mask in [0, 1]. TFLite int8: quantise x and dequantise y with the tensors' scale "
    "and zero point."
)


MOTION_LAYOUT = (
    "mel: (1, n_mels, W) float32, log-mel (parla.audio.mel: 16 kHz, hop 10 ms) normalised per bin with "
    "mel_mean / mel_std; coeffs: (1, K, W) standardised lip/jaw coefficients, output t sees mel frames "
    "<= t + lookahead (the last frames are padded by repetition inside the graph)."
)


def metadata(cfg, version: str, precision: str, fmt: str) -> dict[str, str]:
    return {
        "parla.model": "refiner",
        "parla.version": version,
        "parla.format": fmt,
        "parla.precision": precision,
        "parla.refiner_config": json.dumps(cfg.to_dict()),
        "parla.input": INPUT,
        "parla.output": OUTPUT,
        "parla.layout": LAYOUT,
        "parla.shape": json.dumps([1, 6 + cfg.cond, cfg.res, cfg.res]),
    }


def motion_metadata(cfg, mel_norm: tuple[np.ndarray, np.ndarray], version: str, fmt: str) -> dict[str, str]:
    return {
        "parla.model": "motion",
        "parla.version": version,
        "parla.format": fmt,
        "parla.precision": "fp32",
        "parla.motion_config": json.dumps(cfg.to_dict()),
        "parla.input": "mel",
        "parla.output": "coeffs",
        "parla.layout": MOTION_LAYOUT,
        "parla.shape": json.dumps([1, cfg.n_mels, MOTION_WINDOW]),
        "parla.mel_mean": json.dumps([round(float(v), 6) for v in mel_norm[0]]),
        "parla.mel_std": json.dumps([round(float(v), 6) for v in mel_norm[1]]),
    }


def export(module, cfg, version: str, fmt: str, precision: str, out_dir: Path, calib: np.ndarray | None) -> Path:
    """Write one format x precision of the refiner into out_dir; returns the model file. ``calib``: (N, 9, r, r)."""
    check(fmt, precision)
    if precision in ("int8",) and (calib is None or len(calib) == 0):
        raise ParlaError("int8 export needs calibration frames (--calib DATASET)")
    import torch

    spec = Spec(
        module, torch.zeros(1, 6 + cfg.cond, cfg.res, cfg.res), metadata(cfg, version, precision, fmt), INPUT, OUTPUT
    )
    return _write(spec, fmt, precision, out_dir / model_filename(fmt, precision), calib)


def export_motion(net, cfg, mel_norm, version: str, fmt: str, out_dir: Path) -> Path:
    """The audio->motion net in FP32 (it is 0.1 GMAC per second of audio: no need to quantise it)."""
    import torch

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            return self.net(mel)

    spec = Spec(
        Fixed().eval(),
        torch.zeros(1, cfg.n_mels, MOTION_WINDOW),
        motion_metadata(cfg, mel_norm, version, fmt),
        "mel",
        "coeffs",
    )
    return _write(spec, fmt, "fp32", out_dir / model_filename(fmt, "fp32", "motion"), None)


class Spec:
    def __init__(self, module, example, meta: dict[str, str], input_name: str, output_name: str) -> None:
        self.module, self.example, self.meta = module, example, meta
        self.input, self.output = input_name, output_name


def _write(spec: Spec, fmt: str, precision: str, path: Path, calib) -> Path:
    out_dir = path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmp_path = Path(tmp) / path.name
        {"onnx": _onnx, "openvino": _openvino, "tflite": _tflite}[fmt](spec, precision, tmp_path, calib)
        for f in Path(tmp).iterdir():  # the finished files replace old ones only now (nothing half-written)
            if f.name.startswith(path.stem):
                shutil.move(str(f), out_dir / f.name)
    return path


def _onnx_fp32(spec: Spec, path: Path) -> None:
    import torch

    require("onnxscript", "export")
    prog = torch.onnx.export(
        spec.module,
        (spec.example,),
        dynamo=True,
        opset_version=18,
        input_names=[spec.input],
        output_names=[spec.output],
        verbose=False,
    )
    if prog is None:
        raise ParlaError("onnx export returned no program (torch.onnx.export with dynamo=True)")
    prog.save(str(path))
    _onnx_meta(path, spec.meta)


def _onnx_meta(path: Path, meta: dict[str, str]) -> None:
    onnx = require("onnx", "export")
    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def _onnx(spec: Spec, precision: str, path: Path, calib) -> None:
    if precision == "fp32":
        _onnx_fp32(spec, path)
        return
    from parla.quantization.quantizers import quantize_onnx

    fp32 = path.with_name(path.stem + ".fp32.onnx")
    _onnx_fp32(spec, fp32)
    quantize_onnx(fp32, path, calib, spec.input)
    fp32.unlink()
    _onnx_meta(path, spec.meta)


def _openvino(spec: Spec, precision: str, path: Path, calib) -> None:
    ov = require("openvino", "openvino")
    src = path.with_name(path.stem + ".src.onnx")
    _onnx_fp32(spec, src)
    model = ov.convert_model(str(src))
    if precision == "int8":
        from parla.quantization.quantizers import quantize_openvino

        model = quantize_openvino(model, calib)
    for k, v in spec.meta.items():
        model.set_rt_info(v, ["parla", k.removeprefix("parla.")])
    ov.save_model(model, str(path), compress_to_fp16=precision == "fp16")
    src.unlink()


def _tflite(spec: Spec, precision: str, path: Path, calib) -> None:
    litert_torch = require("litert_torch", "export")
    fp32 = path.with_name(path.stem + ".fp32.tflite") if precision != "fp32" else path
    litert_torch.convert(spec.module, (spec.example,)).export(str(fp32))
    if precision != "fp32":
        from parla.quantization.quantizers import quantize_tflite

        quantize_tflite(fp32, path, precision, calib)
        fp32.unlink()
    _tflite_meta(path, spec.meta)


def _tflite_meta(path: Path, meta: dict[str, str]) -> None:
    """Store the metadata as a flatbuffer metadata entry named "parla" (JSON)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "parla", len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != "parla"] + [entry]
    fb.write_model(model, str(path))
