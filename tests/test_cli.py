"""Every user error gives one clear line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from parla.cli import main

from .test_audio import encode


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *fragments: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("parla: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def twin_faces(tmp_path, face_path):
    import cv2

    img = cv2.imread(str(face_path))
    path = tmp_path / "twins.jpg"
    cv2.imwrite(str(path), np.concatenate([img, cv2.flip(img, 1)], axis=1))
    return path


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "animate", "stream", "prepare", "train", "distill", "export", "bench", "eval", "verify"):
        assert f"    {cmd}" in out


def test_stream_needs_a_portrait_or_camera(capsys):
    code, _, err = run(capsys, "stream", "--audio", "x.wav")
    assert code != 0
    one_error_line(err, "PORTRAIT photo or --camera")


def test_export_bad_checkpoint(capsys, tmp_path):
    pytest.importorskip("torch")
    code, _, err = run(
        capsys, "export", str(tmp_path), "--format", "onnx", "--precision", "fp32", "-o", str(tmp_path / "out")
    )
    assert code == 2 and "not a model folder or a training run" in err


def test_distill_without_dataset(capsys, tmp_path):
    pytest.importorskip("torch")
    code, _, err = run(capsys, "distill", "--data", str(tmp_path), "-o", str(tmp_path / "run"), "--photos", "none")
    assert code == 2
    one_error_line(err, "no prepared clips")


def test_missing_portrait(capsys, tmp_path, speech_path):
    code, _, err = run(capsys, "animate", str(tmp_path / "nobody.jpg"), str(speech_path), "-o", str(tmp_path / "o.mp4"))
    assert code == 2
    one_error_line(err, "nobody.jpg", "no such file")


def test_unreadable_image(capsys, tmp_path, speech_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"not really a jpeg")
    code, _, err = run(capsys, "animate", str(bad), str(speech_path), "-o", str(tmp_path / "o.mp4"))
    assert code == 2
    one_error_line(err, "not a readable image")


def test_no_face(capsys, tmp_path, speech_path):
    import cv2

    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.full((200, 300, 3), 180, np.uint8))
    code, _, err = run(capsys, "animate", str(path), str(speech_path), "-o", str(tmp_path / "o.mp4"))
    assert code == 2
    one_error_line(err, "no face found")


def test_several_faces_without_a_choice(capsys, tmp_path, twin_faces, speech_path):
    code, _, err = run(capsys, "face", str(twin_faces))
    assert code == 2
    one_error_line(err, "2 faces", "--face-index")
    code, out, _ = run(capsys, "face", str(twin_faces), "--face-index", "1", "-o", str(tmp_path / "crop.png"))
    assert code == 0 and (tmp_path / "crop.png").is_file()
    code, _, err = run(capsys, "face", str(twin_faces), "--face-index", "5")
    assert code == 2
    one_error_line(err, "out of range")


@pytest.mark.parametrize("kind", ["unsupported", "corrupt", "empty", "silent"])
def test_bad_audio(capsys, tmp_path, face_path, kind):
    path = tmp_path / "speech.wav"
    if kind == "unsupported":
        path = tmp_path / "speech.txt"
        path.write_text("hello " * 200)
        expect = "audio"
    elif kind == "corrupt":
        path = tmp_path / "speech.mp3"
        path.write_bytes(b"\xff\xfb\x90\x00" + bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8)))
        expect = ""
    elif kind == "empty":
        import wave

        with wave.open(str(path), "wb") as w:  # a valid header and no samples
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
        expect = "empty"
    else:
        encode(path, np.zeros(32000, np.float32), 48000, "wav", "pcm_s16le")
        expect = "silent"
    code, _, err = run(capsys, "animate", str(face_path), str(path), "-o", str(tmp_path / "o.mp4"))
    assert code == 2
    one_error_line(err, expect)


def test_unwritable_output(capsys, tmp_path, face_path, speech_path):
    code, _, err = run(capsys, "animate", str(face_path), str(speech_path), "-o", str(tmp_path / "no" / "o.mp4"))
    assert code == 2
    one_error_line(err, "does not exist")
    code, _, err = run(capsys, "eval", "gen", str(speech_path), "--portrait", str(face_path), "--json", str(tmp_path))
    assert code == 2
    one_error_line(err, "is a directory")


def test_no_traceback_from_the_real_entry_point(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "parla", "eval", "real", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.startswith("parla: error: ")


def test_import_needs_only_numpy():
    code = (
        "import sys, parla, parla.cli, parla.errors, parla.audio, parla.face, parla.media, parla.metrics;"
        "import parla.edge.avatar, parla.edge.engine, parla.edge.sinks, parla.edge.sources, parla.bench;"
        "heavy = {'av', 'cv2', 'dlib', 'torch', 'tqdm', 'yaml'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
