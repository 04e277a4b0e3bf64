"""prepare -> train teacher -> train motion -> bundle -> animate, end to end on a tiny model (CPU, < 2 min)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

FPS = 25


@pytest.fixture(scope="module")
def talking_clip_dir(tmp_path_factory, face_path, speech):
    """A self-made talking clip: the fixture portrait with its jaw opened by the host warp along the speech
    envelope (so prepare sees a moving mouth), with the fixture speech as audio."""
    from parla.face.align import align_face
    from parla.face.composite import NativeCompositor
    from parla.face.detect import detect_faces, select_face
    from parla.face.warp import tps_map
    from parla.media.image import load_image
    from parla.media.video import VideoWriter
    from parla.metrics.av import speech_envelope

    image = load_image(face_path)
    face = select_face(detect_faces(image))
    crop, a = align_face(image, face.landmarks)
    lm = a.to_crop(face.landmarks)
    n = int(len(speech) / 16000 * FPS)
    env = speech_envelope(speech, FPS, n)
    opening = np.clip((env - np.nanpercentile(env, 20)) / 30, 0, 1)
    folder = tmp_path_factory.mktemp("videos")
    composite = NativeCompositor(image, a)
    with VideoWriter(folder / "talk.mp4", FPS, audio=speech) as w:
        for t in range(n):
            drv = lm.copy()
            drv[[56, 57, 58, 65, 66, 67, 6, 7, 8, 9, 10], 1] += 10 * opening[t]
            w.write(composite(*tps_map(lm, drv, 256), None))
    return folder


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, talking_clip_dir):
    from parla.training.prepare import prepare_dataset

    data = tmp_path_factory.mktemp("data")
    report = prepare_dataset(talking_clip_dir, data, show=False)
    return data, report


def test_prepare_train_animate(tmp_path, prepared, talking_clip_dir, face_path, speech_path):
    from parla.edge.avatar import animate
    from parla.media.video import probe_video, stream_durations
    from parla.models.refiner import RefinerConfig
    from parla.training.bundle import make_bundle
    from parla.training.motion import MotionTrainConfig, train_motion
    from parla.training.prepare import prepare_dataset
    from parla.training.teacher import TeacherTrainConfig, train_teacher

    data, report = prepared
    assert report == {"talk.mp4": "ok"}
    assert (data / "basis.npz").is_file() and (data / "clips" / "talk.crops.npy").is_file()
    persons = json.loads((data / "persons.json").read_text())
    assert persons["people"] == 1 and persons["clips"] == {"talk": 0}
    again = prepare_dataset(talking_clip_dir, data, show=False)  # resumable: nothing redone
    assert again == report

    tiny = RefinerConfig(res=64, channels=(8, 16, 32), n_res=1)
    tc = TeacherTrainConfig(steps=4, batch=2, gan_start=2, ckpt_every=2, sample_every=2, log_every=1)
    teacher = train_teacher(data, tmp_path / "teacher", refiner=tiny, train=tc, show=False)
    state = json.loads((teacher / "state.json").read_text())
    assert state["step"] == 4 and (teacher / "samples" / "step_000004.png").is_file()
    log = (teacher / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,seconds,l1,ssim,mouth") and "gan" in log[0] and len(log) == 5
    # Resume continues to a new total instead of starting over.
    train_teacher(data, teacher, resume=True, train=TeacherTrainConfig(steps=6), show=False)
    assert json.loads((teacher / "state.json").read_text())["step"] == 6
    # A run seeded from a shipped generator (no discriminator, no optimiser state) resumes with a fresh critic,
    # which trains alone before the generator's adversarial terms return.
    seeded = tmp_path / "seeded"
    shutil.copytree(teacher, seeded)
    (seeded / "discriminator.safetensors").unlink()
    (seeded / "optim.pt").unlink()
    train_teacher(data, seeded, resume=True, train=TeacherTrainConfig(steps=8), show=False)
    with open(seeded / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) > 6]
    assert [r["step"] for r in rows] == ["7", "8"] and all(r["gan"] == "" and r["d"] != "" for r in rows)
    assert (seeded / "discriminator.safetensors").is_file()

    motion = train_motion(data, tmp_path / "motion", train=MotionTrainConfig(steps=3, batch=2, log_every=3), show=False)
    bundle = make_bundle(teacher, motion, tmp_path / "model")

    # Distil the tiny teacher into a narrower student (real + synthetic pairs, GAN from step 1), resume, bundle.
    from parla.export.api import load_checkpoint
    from parla.training.bundle import add_student
    from parla.training.distill import DistillConfig, train_student

    dc = DistillConfig(steps=3, batch=2, gan_start=1, log_every=1, ckpt_every=3, sample_every=3)
    student = train_student(
        teacher,
        tmp_path / "student",
        data_dir=data,
        photos=None,
        student=RefinerConfig(res=64, channels=(4, 8, 16), n_res=1),
        train=dc,
        show=False,
    )
    log = (student / "log.csv").read_text().splitlines()
    assert "t_l1" in log[0] and "gt_l1" in log[0] and "gan" in log[0] and len(log) == 4
    assert (student / "samples" / "step_000003.png").is_file()
    train_student(teacher, student, data_dir=data, photos=None, resume=True, train=DistillConfig(steps=4), show=False)
    assert json.loads((student / "state.json").read_text())["step"] == 4
    add_student(bundle, student)
    ck = load_checkpoint(bundle)
    assert ck.version == "student-step4" and ck.cfg.channels == (4, 8, 16) and ck.motion is not None

    out = animate(face_path, speech_path, tmp_path / "out.mp4", model=bundle, seed=3, show=False, backend="torch")
    info = probe_video(out)
    assert info.has_audio and (info.width, info.height) == (320, 320)
    d = stream_durations(out)
    assert abs(d["video"] - d["audio"]) <= 1 / FPS
    from parla.audio import load_audio

    assert abs(d["video"] - len(load_audio(speech_path)) / 16000) <= 1 / FPS


def test_teacher_trains_under_torchrun(tmp_path, prepared):
    """Two CPU processes with DistributedDataParallel (gloo), as on a multi-GPU server with nccl."""
    import subprocess
    import sys

    data, _ = prepared
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "parla",
        "train",
        "teacher",
        "--data",
        str(data),
        "-o",
        str(tmp_path / "ddp"),
        "--steps",
        "2",
        "--batch",
        "1",
        "--channels",
        "8,16,32",
        "--res",
        "64",
        "-q",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = json.loads((tmp_path / "ddp" / "state.json").read_text())
    assert state["step"] == 2 and state["world"] == 2


def test_phoneme_motion_model_end_to_end(tmp_path, prepared, face_path, speech_path):
    """A motion net on log-mel + phoneme features with a closure output: trained, put into a copy of the default
    folder (add_motion), then driven offline (known audio) and live (the streaming encoder) on torch."""
    pytest.importorskip("hama")
    import shutil

    from parla.edge.avatar import Avatar, animate
    from parla.edge.config import load_config
    from parla.modelfolder import bundled_path
    from parla.training.bundle import MIC_FUTURE_S, add_motion
    from parla.training.motion import MotionTrainConfig, train_motion

    data, _ = prepared
    tc = MotionTrainConfig(steps=3, batch=2, log_every=3, phonemes="offline+stream:1:0.2", closure=True, members=2)
    motion = train_motion(data, tmp_path / "motion", train=tc, show=False)
    cfg = json.loads((motion / "config.json").read_text())
    assert cfg["motion"]["n_mels"] == 80 + 256 and cfg["motion"]["closure"] and cfg["motion"]["members"] == 2
    assert (motion / "log_member1.csv").is_file()  # each member's own log
    assert cfg["phonemes"]["train_features"] == ["offline", "stream:1:0.2"]
    folder = tmp_path / "model"
    shutil.copytree(bundled_path(), folder)
    add_motion(folder, motion)
    model = json.loads((folder / "config.json").read_text())
    assert model["close_pauses"] is False and model["silence_hold_s"] == 0.0
    assert model["phonemes"]["future_s"] == MIC_FUTURE_S  # a live source waits for the trade-off's knee
    assert not any(k.startswith("motion_") for k in model["edge"])  # stale exports dropped

    out = animate(
        face_path,
        speech_path,
        tmp_path / "out.mp4",
        model=folder,
        net="student",
        device="cpu",
        show=False,
        backend="torch",
    )
    assert out.is_file()
    rt = load_config("x86-cpu", {"backend": "torch", "device": "cpu", "precision": "fp32", "model": str(folder)})
    from parla.audio import load_audio

    speech = load_audio(speech_path)
    with Avatar.from_image(face_path, rt) as av:
        live = av.new_motion()  # no audio ahead: the streaming encoder
        fms = [f for i in range(0, len(speech), 640) for f in live.push(speech[i : i + 640])]
        fms += live.flush(len(speech))
        n = int(round(len(speech) / 16000 * 25))
        assert [f.index for f in fms[:n]] == list(range(n))
        assert all(np.isfinite(f.coeffs).all() and 0.0 <= f.mouth_close <= 1.0 for f in fms)


def test_an_ensemble_of_lips_nets_is_their_mean_in_torch_and_onnx(tmp_path):
    """LipNetConfig.members: the trained nets' weights copied into one module whose output is their mean, which
    reloads from its config and exports as one graph (onnx here; every format in test_edge_assets)."""
    import torch

    from parla.edge.backends import open_model
    from parla.export.exporter import export_motion
    from parla.modelfolder import load_weights
    from parla.models.lips import LipNet, LipNetConfig, build_lipnet, ensemble
    from parla.training import checkpoint as ckpt

    cfg = LipNetConfig(n_mels=12, n_coeffs=5, width=8, lookahead=4)
    nets = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        nets.append(LipNet(cfg).eval())
    ens = ensemble(nets)
    assert ens.cfg.members == 3 and ensemble(nets[:1]) is nets[0]
    x = torch.randn(2, 12, 64)
    with torch.no_grad():
        want = torch.stack([n(x) for n in nets]).mean(0)
        assert torch.allclose(ens(x), want, atol=1e-6)
        assert not torch.allclose(nets[0](x), want, atol=1e-3)  # the members differ: the mean is not any one
    ckpt.save_weights(ens, tmp_path / "m.safetensors")
    again = build_lipnet(LipNetConfig.from_dict(ens.cfg.to_dict())).eval()
    load_weights(again, tmp_path / "m.safetensors")
    with torch.no_grad():
        assert torch.equal(again(x), ens(x))
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    norm = (np.zeros(12, np.float32), np.ones(12, np.float32))
    path = export_motion(ens, ens.cfg, norm, "test", "onnx", tmp_path)
    from parla.formats import MOTION_WINDOW

    w = np.random.default_rng(0).normal(size=(1, 12, MOTION_WINDOW)).astype(np.float32)
    with open_model(path) as b, torch.no_grad():
        assert np.abs(b.run(w) - ens(torch.from_numpy(w)).numpy()).max() < 1e-4
    with pytest.raises(ValueError, match="members"):
        build_lipnet(LipNetConfig(members=0))


def test_a_phoneme_net_closes_only_where_nobody_speaks():
    """apply_synthesis: a phoneme-fed net gets no hold and closes its lips only after a second under the absolute
    silence level (closing in the speech's pauses cost it held-out correlation); a log-mel net keeps the calibrated
    settings."""
    from parla.training.bundle import MIC_FUTURE_S, SYNTHESIS, apply_synthesis

    blink = {"mean_interval_s": 2.2}
    mel = apply_synthesis({"motion": {"closure": False}, "blink": blink, "close_pauses": False, "min_pause_s": 1})
    assert mel["silence_hold_s"] == SYNTHESIS["silence_hold_s"] and "close_pauses" not in mel
    assert "min_pause_s" not in mel and "quiet_pauses" not in mel
    ph = apply_synthesis({"motion": {"closure": False}, "blink": blink, "phonemes": {"future_s": 0.3}})
    assert ph["silence_hold_s"] == 0.0 and ph["close_pauses"] is True
    assert ph["min_pause_s"] == 1.0 and ph["quiet_pauses"] is True
    assert ph["phonemes"]["future_s"] == MIC_FUTURE_S
    assert apply_synthesis(ph) == ph  # idempotent
