"""A non-editable install (``pip install .``, here into a target folder with the dependencies already present)
runs `parla stream` from another directory with the default firmware config and the bundled model: configs and
models are package data, found through importlib.resources, never through the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("openvino")  # the default config (x86-cpu) runs OpenVINO


@pytest.mark.slow
def test_wheel_install_streams_with_the_default_config(tmp_path, face_path, speech_path):
    import importlib.util

    target = tmp_path / "site"
    # build with this environment's setuptools when it has one (no index needed), else in pip's isolation
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation, "--target", str(target), str(ROOT)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (target / "parla" / "firmware_configs" / "x86-cpu.yaml").is_file()
    assert not (target / "parla" / "firmware_configs").is_symlink()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import parla; print(parla.__file__)"], cwd=work, env=env, capture_output=True, text=True
    )
    assert where.stdout.strip() == str(target / "parla" / "__init__.py")
    out = work / "out.mp4"
    p = subprocess.run(
        [
            sys.executable,
            str(target / "bin" / "parla"),
            "stream",
            str(face_path),
            "--audio",
            str(speech_path),
            "--sink",
            "file:out.mp4",
            "--seconds",
            "2",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 1000
    from parla.media.video import probe_video

    assert probe_video(out).n_frames >= 45


@pytest.mark.slow
def test_demo_and_stream_run_without_torch_or_openvino(tmp_path, face_path, speech_path):
    """README command 1 installs no torch (and no OpenVINO): `parla demo` and `parla stream` must run on what it
    installs. Here both are made unimportable for the child process."""
    blocked = tmp_path / "blocked"
    for name in ("torch", "openvino", "matplotlib"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (blocked by a test)')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT)])}
    p = subprocess.run([sys.executable, "-m", "parla", "demo", "-o", "demo.mp4", "-q"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    from parla.media.video import probe_video

    assert probe_video(tmp_path / "demo.mp4").n_frames > 100
    p = subprocess.run([sys.executable, "-m", "parla", "stream", str(face_path), "--audio", str(speech_path),
                        "--sink", "file:s.mp4", "--seconds", "2"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    assert probe_video(tmp_path / "s.mp4").n_frames >= 45
