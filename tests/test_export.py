"""Export a tiny random refiner through every format x precision, reload it with its runtime, check parity with
explicit tolerances, count the INT8 ops, and check the error paths (corrupt files, bad format/precision)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
for _mod in ("onnxruntime", "openvino", "nncf", "onnxscript", "litert_torch", "ai_edge_litert"):
    pytest.importorskip(_mod)

from parla.errors import ModelNotFoundError, ParlaError  # noqa: E402
from parla.formats import EXPORTABLE, FORMATS, check  # noqa: E402

# (PSNR of the composed crop in dB, max abs error of the network output) each export must meet vs torch FP32.
TOLERANCE = {"fp32": (80.0, 1e-4), "fp16": (60.0, 5e-3), "w8": (40.0, 0.05), "int8": (35.0, 0.1)}
JOBS = [(f, p) for f in EXPORTABLE for p in FORMATS[f].precisions]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, face_path):
    """A tiny random refiner, real-face samples (synthetic motions of the test portrait), and every export."""
    import torch

    from parla.export.exporter import export
    from parla.face.expression import ExpressionBasis
    from parla.modelfolder import bundled_path
    from parla.models.refiner import Refiner, RefinerConfig, edge_module
    from parla.quantization.calibration import from_portrait

    torch.manual_seed(0)
    cfg = RefinerConfig(channels=(8, 16, 32, 64), n_res=1)
    module = edge_module(Refiner(cfg))
    basis = ExpressionBasis.load(bundled_path() / "basis.npz")
    calib = from_portrait(face_path, basis, 16, cfg.res, seed=1)
    held = from_portrait(face_path, basis, 6, cfg.res, seed=2)
    out = tmp_path_factory.mktemp("export")
    files = {(f, p): export(module, cfg, "test-1", f, p, out, calib.x) for f, p in JOBS}
    return module, cfg, held, files


@pytest.mark.parametrize("fmt,precision", JOBS)
def test_export_reloads_with_parity(tiny, fmt, precision):
    from parla.edge.backends import open_model
    from parla.export import parity as P

    module, cfg, held, files = tiny
    y_ref = P.torch_reference(module, held.x)
    with open_model(files[fmt, precision], device="CPU" if fmt == "openvino" else "cpu") as b:
        assert b.meta["parla.version"] == "test-1"  # self-describing: version, config, layout in the file
        assert json.loads(b.meta["parla.refiner_config"])["channels"] == [8, 16, 32, 64]
        assert b.input_shape == (1, 9, 128, 128)
        y = b.run(held.x)
    assert y.shape == y_ref.shape
    m = P.compare(y, y_ref, held, cfg.mode)
    min_psnr, max_err = TOLERANCE[precision]
    assert m["psnr"] >= min_psnr, m
    assert m["max_abs_error"] <= max_err, m
    assert m["ssim"] >= 0.95, m


@pytest.mark.parametrize("fmt,precision", JOBS)
def test_int8_models_contain_int8_ops(tiny, fmt, precision):
    from parla.export.api import count_int8_ops

    n = count_int8_ops(tiny[3][fmt, precision])
    if precision in ("int8", "w8"):
        assert n >= 10, n  # every conv of the tiny net (11 of them) is quantised
    else:
        assert n == 0


def test_full_int8_tflite_has_int8_io(tiny):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tiny[3]["tflite", "int8"]))
    assert it.get_input_details()[0]["dtype"] == np.int8
    assert it.get_output_details()[0]["dtype"] == np.int8


@pytest.mark.parametrize("fmt", EXPORTABLE)
def test_corrupt_model_file_gives_clear_error(tiny, tmp_path, fmt):
    from parla.edge.backends import open_model

    src = tiny[3][fmt, "fp32"]
    bad = tmp_path / src.name
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated
    if fmt == "openvino":
        bin_ = src.with_suffix(".bin").read_bytes()
        bad.with_suffix(".bin").write_bytes(bin_[: len(bin_) // 3])
    with pytest.raises(ModelNotFoundError, match="unreadable|truncated|not a Parla"):
        open_model(bad, device="CPU" if fmt == "openvino" else "cpu")


def test_missing_device_and_unknown_format(tiny, tmp_path):
    from parla.edge.backends import open_model

    with pytest.raises(ParlaError, match="NPU not found"):
        open_model(tiny[3]["openvino", "int8"], device="NPU")
    with pytest.raises(ParlaError, match="not available"):
        open_model(tiny[3]["onnx", "int8"], device="cuda")
    with pytest.raises(ParlaError, match="delegate"):
        open_model(tiny[3]["tflite", "int8"], device="edgetpu")
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(ParlaError, match="unknown model format"):
        open_model(other)


def test_format_table_checks():
    assert check("openvino", "fp16").runtime == "openvino"
    with pytest.raises(ParlaError, match="no fp16"):
        check("onnx", "fp16")
    with pytest.raises(ParlaError, match="unknown format"):
        check("caffe", "fp32")


def test_plan_expands_all():
    from parla.export.api import plan

    assert plan("all", "int8") == [("onnx", "int8"), ("openvino", "int8"), ("tflite", "int8")]
    assert ("openvino", "fp16") in plan("all", "all")
    with pytest.raises(ParlaError):
        plan("tflite", "fp16")


def test_export_cli_writes_parity_report(tmp_path, face_path):
    """`parla export RUN --format onnx --precision int8` on a tiny run folder: models + parity.json/md."""
    import torch

    from parla.cli import main
    from parla.models.refiner import Refiner, RefinerConfig
    from parla.training import checkpoint as ckpt

    torch.manual_seed(0)
    cfg = RefinerConfig(channels=(8, 16, 32, 64), n_res=1)
    run = tmp_path / "run"
    ckpt.write_config(run, {"kind": "student", "refiner": cfg.to_dict(), "data": str(tmp_path / "nodata")})
    ckpt.save_weights(Refiner(cfg), run / "refiner.safetensors")
    (run / "state.json").write_text(
        json.dumps({"step": 3, "kind": "student", "refiner": cfg.to_dict(), "data": str(tmp_path / "nodata")})
    )
    calib = tmp_path / "calib"  # no dataset here: int8 needs frames, and says so
    assert (
        main(
            [
                "export",
                str(run),
                "--format",
                "onnx",
                "--precision",
                "int8",
                "--calib",
                str(calib),
                "-o",
                str(tmp_path / "out"),
                "-q",
            ]
        )
        == 2
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "export",
                str(run),
                "--format",
                "onnx",
                "--precision",
                "fp32",
                "--parity",
                str(calib),
                "-o",
                str(out),
                "-q",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "export",
                str(run),
                "--format",
                "onnx",
                "--precision",
                "fp32",
                "--parity",
                "demo",
                "--parity-size",
                "4",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    keys = {"format", "precision", "psnr", "ssim", "max_abs_error", "size_mb", "latency_ms"}
    saved = json.loads((out / "parity.json").read_text())
    assert all(keys <= set(r) for r in saved["results"])
    assert [r["format"] for r in saved["results"]] == ["torch", "onnx"]
    assert saved["version"] == "student-step3"
    assert (out / "refiner_fp32.onnx").is_file() and (out / "parity.md").is_file()


def test_device_fallback_is_logged_or_refused(tiny, caplog):
    """Devices this machine lacks (NPU, CUDA, Edge TPU): a clear error, or CPU with a logged warning."""
    from parla.edge.backends.base import open_for_config

    files = tiny[3]
    for backend, fmt, device, extra in (
        ("openvino", "openvino", "NPU", {}),
        ("onnxruntime", "onnx", "cuda", {}),
        ("tflite", "tflite", "edgetpu", {"delegate": "libedgetpu.so.1"}),
    ):
        with pytest.raises(ParlaError):
            open_for_config(files[fmt, "int8"], backend, device, fallback_to_cpu=False, **extra)
        with open_for_config(files[fmt, "int8"], backend, device, fallback_to_cpu=True, **extra) as b:
            assert b.device.lower() == "cpu"
        assert f"falling back to {backend}" in caplog.text
