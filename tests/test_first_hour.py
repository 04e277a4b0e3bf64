"""What a new user runs right after README command 1 (the edge install: no torch) works: animate, animate --text,
stream, bench and verify, each a real process with torch made unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory):
    """PYTHONPATH with a `torch` package that refuses to import, as on a machine where it is not installed."""
    shadow = tmp_path_factory.mktemp("no_torch")
    (shadow / "torch").mkdir()
    (shadow / "torch" / "__init__.py").write_text("raise ImportError('torch is not installed (test shadow)')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]))
    return env


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory, speech):
    from .test_audio import encode

    path = tmp_path_factory.mktemp("audio") / "short.wav"
    encode(path, speech[8000 : 8000 + 2 * 16000], 16000, "wav", "pcm_s16le")
    return path


def parla(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parla", *args], env=env, capture_output=True, text=True)


def test_the_shadow_really_hides_torch(no_torch_env):
    p = subprocess.run([sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True, text=True)
    assert p.returncode != 0 and "test shadow" in p.stderr


def test_animate_stream_verify_without_torch(tmp_path, no_torch_env, face_path, short_wav):
    out = tmp_path / "a.mp4"
    p = parla(no_torch_env, "animate", str(face_path), str(short_wav), "-o", str(out), "-q")
    assert p.returncode == 0, p.stderr
    rec = tmp_path / "s.mp4"
    p = parla(no_torch_env, "stream", str(face_path), "--audio", str(short_wav), "--sink", f"file:{rec}")
    assert p.returncode == 0, p.stderr
    for video in (out, rec):
        p = parla(no_torch_env, "verify", str(video))
        assert p.returncode == 0 and "AI-generated" in p.stdout, p.stdout + p.stderr


def test_animate_text_without_torch(tmp_path, no_torch_env, face_path):
    pytest.importorskip("espeakng_loader")
    out = tmp_path / "t.mp4"
    p = parla(no_torch_env, "animate", str(face_path), "--text", "Hello there, my friend.", "-o", str(out), "-q")
    assert p.returncode == 0, p.stderr
    assert out.is_file()


def test_bench_without_torch_writes_where_asked_with_a_labelled_psnr(tmp_path, no_torch_env):
    out = tmp_path / "bench"
    args = ("bench", "--backends", "onnxruntime", "--seconds", "2", "--frames", "20", "-o", str(out), "-q")
    p = parla(no_torch_env, *args)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = json.loads((out / "bench.json").read_text())["results"]
    assert [r["backend"] for r in rows] == ["onnxruntime"]
    psnr, ref = rows[0]["psnr_vs_fp32"], rows[0]["psnr_reference"]
    assert ref == "onnx fp32 (torch not installed)"  # the bundled FP32 ONNX student stands in for torch
    assert np.isfinite(psnr) and psnr > 30


def test_torch_backend_without_torch_names_the_cpu_build(tmp_path, no_torch_env, face_path, short_wav):
    p = parla(
        no_torch_env, "animate", str(face_path), str(short_wav), "-o", str(tmp_path / "o.mp4"), "--backend", "torch"
    )
    assert p.returncode == 2
    assert "download.pytorch.org/whl/cpu" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_bench_refuses_the_package_folder(tmp_path):
    import parla as pkg
    from parla.cli import main

    assert main(["bench", "-o", str(os.path.join(os.path.dirname(pkg.__file__), "assets", "x")), "-q"]) == 2
