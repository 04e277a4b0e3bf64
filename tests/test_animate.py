"""The bundled default model through the PyTorch reference path: demo, animate, determinism, bad model files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from parla.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory, speech):
    from .test_audio import encode

    path = tmp_path_factory.mktemp("audio") / "short.wav"
    encode(path, speech[8000 : 8000 + 2 * 16000], 16000, "wav", "pcm_s16le")  # 2 s
    return path


def test_demo_renders_a_video(tmp_path, capsys):
    from parla.media.video import probe_video, stream_durations

    out = tmp_path / "demo.mp4"
    assert main(["demo", "-o", str(out), "-q"]) == 0
    info = probe_video(out)
    assert info.has_audio and (info.width, info.height) == (512, 512)  # the photo's own resolution
    d = stream_durations(out)
    assert abs(d["video"] - d["audio"]) <= 1 / 25


def test_same_seed_same_video_other_seed_other_motion(tmp_path, face_path, short_speech):
    from parla.media.video import iter_frames

    outs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        outs[name] = tmp_path / f"{name}.mp4"
        assert (
            main(["animate", str(face_path), str(short_speech), "-o", str(outs[name]), "--seed", str(seed), "-q"]) == 0
        )
    fa, fb, fc = ([f for _, f in iter_frames(outs[k])] for k in "abc")
    assert len(fa) == len(fb) == 50
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(fa, fc, strict=True))


def test_pose_scale_zero_keeps_the_head_still(tmp_path, face_path, short_speech):
    from parla.audio import load_audio
    from parla.edge.backends.torch_backend import TorchBackend
    from parla.edge.synth import MotionSettings, MotionSynth
    from parla.modelfolder import ModelFolder

    folder = ModelFolder()
    settings = MotionSettings.from_folder(folder)
    audio = load_audio(short_speech)
    from .conftest import known_front_end

    lips = TorchBackend(folder.path, kind="lips").run
    synth = MotionSynth(settings, lips, seed=1, pose_scale=0.0, phonemes=known_front_end(settings, audio))
    fms = synth.push(audio) + synth.flush(len(audio))
    assert len(fms) == 50
    # the head stays still (breathing scales with pose_scale too): no pose at all
    assert all(np.all(f.pose == 0) for f in fms) and fms[0].coeffs.shape == (settings.basis.n_components,)
    assert all(0 <= f.blink <= 1 for f in fms)


def test_corrupt_model_file_is_a_clear_error(tmp_path, capsys, face_path, short_speech):
    from parla.modelfolder import bundled_path

    model = tmp_path / "model"
    shutil.copytree(bundled_path(), model)
    data = bytearray((model / "refiner.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (model / "refiner.safetensors").write_bytes(bytes(data))
    out = str(tmp_path / "o.mp4")
    code = main(["animate", str(face_path), str(short_speech), "-o", out, "--model", str(model), "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 2 and "checksum mismatch" in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_emotion_names_and_vectors(tmp_path, capsys, face_path, short_speech):
    code = main(["animate", str(face_path), str(short_speech), "-o", str(tmp_path / "e.mp4"), "--emotion", "angry"])
    assert code == 2 and "--emotion" in capsys.readouterr().err
    assert (
        main(["animate", str(face_path), str(short_speech), "-o", str(tmp_path / "h.mp4"), "--emotion", "happy", "-q"])
        == 0
    )


def test_animate_audio_shorter_than_the_silence_hold(tmp_path, face_path, short_speech):
    """The pause hold averages over 1 s: a half-second clip (12 frames) still gives one frame per 40 ms."""
    from parla.audio import load_audio
    from parla.media.video import iter_frames

    from .test_audio import encode

    half = tmp_path / "half.wav"
    encode(half, load_audio(short_speech)[4000:12000], 16000, "wav", "pcm_s16le")
    out = tmp_path / "half.mp4"
    assert main(["animate", str(face_path), str(half), "-o", str(out), "-q"]) == 0
    assert len([f for _, f in iter_frames(out)]) == 12
