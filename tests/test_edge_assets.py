"""The bundled student in each edge format: found through importlib.resources, sha256-checked, and close to the
FP32 torch student on real-face frames, on every runtime installed here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from parla.errors import ModelNotFoundError
from parla.formats import EXPORTABLE, FORMATS

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def frames(face_path):
    from parla.export.api import load_checkpoint
    from parla.export.parity import torch_reference
    from parla.modelfolder import bundled_path
    from parla.quantization.calibration import from_portrait

    ck = load_checkpoint("default")
    s = from_portrait(face_path, ck.basis, 4, ck.cfg.res, seed=3)
    return ck, s, torch_reference(ck.module, s.x), bundled_path()


@pytest.mark.parametrize("fmt", EXPORTABLE)
def test_bundled_student_runs_on_each_runtime(frames, fmt):
    pytest.importorskip(FORMATS[fmt].runtime)
    from parla.edge.backends import open_model
    from parla.export.parity import compare
    from parla.modelfolder import ModelFolder

    ck, s, y_ref, _ = frames
    with open_model(ModelFolder().edge_model(fmt)) as b:
        assert b.meta["parla.version"] == ck.version
        y = b.run(s.x)
    m = compare(y, y_ref, s, ck.cfg.mode)
    assert m["psnr"] >= 30.0 and m["ssim"] >= 0.95, m


@pytest.mark.parametrize("fmt", EXPORTABLE)
def test_bundled_motion_net_matches_torch(frames, fmt):
    pytest.importorskip(FORMATS[fmt].runtime)
    import torch

    from parla.edge.backends import open_model
    from parla.modelfolder import ModelFolder

    ck = frames[0]
    net = ck.motion[0]
    with open_model(ModelFolder().edge_model(fmt, "motion")) as b:
        x = np.random.default_rng(0).normal(size=b.input_shape).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        assert np.abs(b.run(x) - ref).max() < 1e-3


def test_modified_model_file_is_refused(tmp_path):
    from parla.modelfolder import ModelFolder, bundled_path

    folder = tmp_path / "default"
    shutil.copytree(bundled_path(), folder)
    path = ModelFolder(folder).edge_model("onnx")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match="checksum mismatch"):
        ModelFolder(folder).edge_model("onnx")
    with pytest.raises(ModelNotFoundError, match="has no openvino fp16 refiner"):
        ModelFolder(folder).edge_model("openvino", precision="fp16")
    (folder / "student.safetensors").write_bytes(b"x" * 10)
    with pytest.raises(ModelNotFoundError, match="checksum mismatch"):
        ModelFolder(folder).refiner("student")


def test_a_digest_list_is_read_in_bounded_memory(tmp_path):
    """An export folder's SHA256SUMS is read at most 64 KiB far: a huge or endless one is refused in one line."""
    from parla.modelfolder import MAX_SUMS_BYTES, SHA256SUMS, export_file

    (tmp_path / "refiner_int8.onnx").write_bytes(b"model")
    (tmp_path / SHA256SUMS).write_bytes(b"0" * 64 + b"  refiner_int8.onnx\n" + b"#" * (MAX_SUMS_BYTES + 10))
    with pytest.raises(ModelNotFoundError, match="over 64 KiB"):
        export_file(tmp_path, "refiner_int8.onnx")
    (tmp_path / SHA256SUMS).write_bytes(b"0" * 64 + b"  refiner_int8.onnx\n")
    with pytest.raises(ModelNotFoundError, match="checksum mismatch"):  # read, and the digest checked
        export_file(tmp_path, "refiner_int8.onnx")
