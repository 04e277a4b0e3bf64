"""The bundled student in each edge format: found through importlib.resources, sha256-checked, and close to the
FP32 torch student on real-face frames, on every runtime installed here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from parla.errors import ModelNotFoundError
from parla.export.formats import EXPORTABLE, FORMATS

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def frames(face_path):
    from parla.export.api import bundled_folder, load_checkpoint
    from parla.export.parity import torch_reference
    from parla.export.samples import from_portrait

    ck = load_checkpoint("default")
    s = from_portrait(face_path, ck.basis, 4, ck.cfg.res, seed=3)
    return ck, s, torch_reference(ck.module, s.x), bundled_folder()


@pytest.mark.parametrize("fmt", EXPORTABLE)
def test_bundled_student_runs_on_each_runtime(frames, fmt):
    pytest.importorskip(FORMATS[fmt].runtime)
    from parla.edge.assets import open_bundled
    from parla.export.parity import compare

    ck, s, y_ref, _ = frames
    with open_bundled(fmt) as b:
        assert b.meta["parla.version"] == ck.version
        y = b.run(s.x)
    m = compare(y, y_ref, s, ck.cfg.mode)
    assert m["psnr"] >= 30.0 and m["ssim"] >= 0.95, m


@pytest.mark.parametrize("fmt", EXPORTABLE)
def test_bundled_motion_net_matches_torch(frames, fmt):
    pytest.importorskip(FORMATS[fmt].runtime)
    import torch

    from parla.edge.assets import open_bundled

    ck = frames[0]
    net = ck.motion[0]
    with open_bundled(fmt, "motion") as b:
        x = np.random.default_rng(0).normal(size=b.input_shape).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        assert np.abs(b.run(x) - ref).max() < 1e-3


def test_modified_bundled_file_is_refused(tmp_path, monkeypatch):
    from parla.edge import assets

    folder = tmp_path / "default"
    shutil.copytree(assets._folder(), folder)
    monkeypatch.setattr(assets, "_folder", lambda: folder)
    path = assets.bundled_edge_model("onnx")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match="checksum mismatch"):
        assets.bundled_edge_model("onnx")
    with pytest.raises(ModelNotFoundError, match="no bundled edge model"):
        assets.bundled_edge_model("torch")
