"""SIGINT, SIGTERM and SIGHUP (Ctrl-C, `docker stop`, systemd, a closed terminal) sent to real `parla` processes
mid-work (issue 16): a render leaves nothing behind; a `stream --sink file:` recording is finished and kept as a
playable file up to the signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "parla", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job ignores SIGINT, and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_part(p: subprocess.Popen, folder: Path, timeout: float = 60.0) -> float:
    """Wait until the output's temporary file exists (the work has begun); returns when it appeared."""
    t0 = time.monotonic()
    while not list(folder.glob(".*.part.mp4")):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() - t0 < timeout, "the output never started"
        time.sleep(0.05)
    return time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_during_animate_leaves_nothing(tmp_path, face_path, speech_path, sig):
    out = tmp_path / "out"
    out.mkdir()
    p = _start(["animate", str(face_path), str(speech_path), "-o", str(out / "clip.mp4"), "-q"], tmp_path)
    _wait_for_part(p, out)
    time.sleep(0.5)
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 128 + sig, err
    assert err.strip() == f"parla: interrupted ({sig.name})"
    assert list(out.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_during_a_stream_recording_keeps_it(tmp_path, face_path, speech_path, sig):
    from parla.media.video import iter_frames, packet_durations, probe_video

    out = tmp_path / "out"
    out.mkdir()
    rec = out / "live.mp4"
    p = _start(
        [
            "stream",
            str(face_path),
            "--audio",
            str(speech_path),
            "--backend",
            "onnxruntime",
            "--device",
            "cpu",
            "--sink",
            f"file:{rec}",
        ],
        tmp_path,
    )
    began = _wait_for_part(p, out)
    time.sleep(3.0)
    p.send_signal(sig)
    stopped = time.monotonic()
    _, err = p.communicate(timeout=30)
    assert p.returncode == 128 + sig, err
    assert "the recording up to the signal is kept" in err and "Traceback" not in err
    assert [x.name for x in out.iterdir()] == ["live.mp4"]  # no temporary file beside it
    info = probe_video(rec)
    frames = sum(1 for _ in iter_frames(rec))  # playable: every frame decodes
    assert frames >= 1  # something was rendered (how much in 3 s depends on the machine's load)
    assert frames / info.fps <= stopped - began + 0.5
    video_s, audio_s = packet_durations(rec)
    assert audio_s is not None and abs(video_s - frames / info.fps) < 1e-3
    assert abs(audio_s - video_s) <= 1 / info.fps + 0.025  # audio as long as the video


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_the_stream_quietly(tmp_path, face_path, speech_path):
    """`parla stream --sink stdout | head -c N`: the closed pipe ends the stream with exit 0 and no traceback."""
    p = subprocess.Popen(
        [sys.executable, "-m", "parla", "stream", str(face_path), "--audio", str(speech_path),
         "--backend", "onnxruntime", "--device", "cpu", "--sink", "stdout"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert p.stdout is not None and p.stderr is not None
    got = p.stdout.read(3 * 320 * 320 * 3)  # three frames, then hang up
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=30) == 0, err
    assert len(got) == 3 * 320 * 320 * 3
    assert "Traceback" not in err and "Exception ignored" not in err
