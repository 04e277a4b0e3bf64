"""Assemble a deployable model folder (config.json + weights + basis, with sha256) from a teacher run and a
motion run; `parla/assets/default/` is made this way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from parla.errors import ModelNotFoundError
from parla.files import write_text_atomic
from parla.training.checkpoint import sha256

# Synthesis settings calibrated on generated videos with `parla eval` (docs/quality.md, "calibration"); the
# fitted values stay in the config beside them.
SYNTHESIS = {
    "silence_hold_s": 1.0,  # pauses hold the running mean of the lip/jaw shape over 1 s instead of twitching
    "head_silent_scale": 0.25,  # the head settles in pauses: its AR innovations shrink to a quarter there
    # the renderer shows 0.85-0.97 of the driven lip gap since closed-mouthed photos open onto painted copies
    # 1.6 made up for a refiner that rendered ~60 % of it, and now over-opened every mouth
    "render_gain": 1.0,
}
# The blink process fitted on the training clips synthesises ~27 blinks/min, and the EAR detector of
# `parla eval` counted 42.7/min on generated eyes; 5.0 s between blinks measured 15/min (real clips: 31.4).
BLINK_MEAN_INTERVAL_S = 5.0


# A motion net with a closure output closes the lips itself, in pauses and on /p b m/; the level-driven
# pause closing and the 1 s hold cost it held-out mouth correlation (benchmarks/motion_cv.py: docs/training.md).
SYNTHESIS_CLOSURE = {"silence_hold_s": 0.0, "close_pauses": False}


# A phoneme-fed net moves the lips with the words, not the level: every way of closing its lips in
# pauses costs held-out mouth correlation (benchmarks/results/motion_cv/ph_closing*: at every silent frame 0.42 ->
# 0.31, in silences of 0.5 s 0.32-0.39, in silences under the absolute level of 0.5 s 0.38), and on the eval
# videos the phoneme probe falls 0.41 -> 0.35 with the 0.5-s closing (docs/training.md). It closes
# its lips only where nobody speaks: a second of audio under the absolute silence level (an idle kiosk, the gap
# between two replies, the start of a stream), and holds nothing. A live source waits for MIC_FUTURE_S of audio
# after each encoder frame: the knee of the microphone trade-off (docs/training.md: 0.1 s 0.327,
# 0.2 s 0.356, 0.3 s 0.353, 0.5 s 0.358).
SYNTHESIS_PHONEMES = {"silence_hold_s": 0.0, "close_pauses": True, "min_pause_s": 1.0, "quiet_pauses": True}
MIC_FUTURE_S = 0.2
PAUSE_KEYS = ("close_pauses", "min_pause_s", "quiet_pauses")  # a log-mel net: the synthesizer's defaults


def apply_synthesis(config: dict) -> dict:
    """The calibrated synthesis settings on a model config (make_bundle applies them; idempotent)."""
    out = {k: v for k, v in dict(config, **SYNTHESIS).items() if k not in PAUSE_KEYS}  # set afresh below
    if config["motion"].get("closure"):
        out.update(SYNTHESIS_CLOSURE)
    elif config.get("phonemes"):
        out.update(SYNTHESIS_PHONEMES)
    if config.get("phonemes"):
        out["phonemes"] = {**config["phonemes"], "future_s": MIC_FUTURE_S}
    out.setdefault("blink_fitted_interval_s", config["blink"]["mean_interval_s"])
    out["blink"] = {**config["blink"], "mean_interval_s": BLINK_MEAN_INTERVAL_S}
    return out


MOTION_KEYS = ("motion", "mel_mean", "mel_std", "head", "blink", "articulation_gain", "phonemes")


def _motion_entries(motion: dict) -> dict:
    """The model folder's config entries that come from a motion run's config."""
    out = {k: motion[k] for k in MOTION_KEYS if k in motion}
    out.setdefault("articulation_gain", 1.0)
    return out


def _motion_training(motion: dict) -> dict:
    return {"motion_train": motion["train"], "motion_final": motion.get("final"), "motion_data": motion["data"]}


def make_bundle(teacher_run: str | Path, motion_run: str | Path, out_dir: str | Path) -> Path:
    t, m, out = Path(teacher_run), Path(motion_run), Path(out_dir)
    for f in (
        t / "state.json",
        t / "refiner.safetensors",
        m / "config.json",
        m / "motion.safetensors",
        m / "basis.npz",
    ):
        if not f.is_file():
            raise ModelNotFoundError(f"{f}: missing; train the teacher and the motion model first")
    state = json.loads((t / "state.json").read_text())
    motion = json.loads((m / "config.json").read_text())
    old = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
    out.mkdir(parents=True, exist_ok=True)
    for src, name in (
        (t / "refiner.safetensors", "refiner.safetensors"),
        (m / "motion.safetensors", "motion.safetensors"),
        (m / "basis.npz", "basis.npz"),
    ):
        shutil.copyfile(src, out / name)
    config = {
        "version": f"teacher-step{state['step']}",
        "refiner": state["refiner"],
        **_motion_entries(motion),
        "training": {
            "teacher_steps": state["step"],
            "teacher_train": state["train"],
            "teacher_data": state["data"],
            **_motion_training(motion),
        },
        "sha256": {n: sha256(out / n) for n in ("refiner.safetensors", "motion.safetensors", "basis.npz")},
    }
    # A new teacher keeps the folder's student and edge models (their entries say which teacher they came from).
    for key in ("student", "edge"):
        if key in old:
            config[key] = old[key]
    if "student.safetensors" in old.get("sha256", {}):
        config["sha256"]["student.safetensors"] = old["sha256"]["student.safetensors"]
    write_text_atomic(out / "config.json", json.dumps(apply_synthesis(config), indent=2) + "\n")
    return out


def add_motion(model_dir: str | Path, motion_run: str | Path) -> Path:
    """Replace a model folder's motion model (``parla train motion`` run: net, basis, head and blink models),
    keeping its refiners; the edge folder's motion exports are dropped (re-export them)."""
    folder, run = Path(model_dir), Path(motion_run)
    for f in (folder / "config.json", run / "config.json", run / "motion.safetensors", run / "basis.npz"):
        if not f.is_file():
            raise ModelNotFoundError(
                f"{f}: missing (a model folder and a finished 'parla train motion' run are needed)"
            )
    config = json.loads((folder / "config.json").read_text())
    motion = json.loads((run / "config.json").read_text())
    for name in ("motion.safetensors", "basis.npz"):
        shutil.copyfile(run / name, folder / name)
        config["sha256"][name] = sha256(folder / name)
    for key in MOTION_KEYS:
        config.pop(key, None)
    config.update(_motion_entries(motion))
    config["training"].update(_motion_training(motion))
    config["edge"] = {k: v for k, v in config.get("edge", {}).items() if not k.startswith("motion_")}
    write_text_atomic(folder / "config.json", json.dumps(apply_synthesis(config), indent=2) + "\n")
    return folder


def add_student(model_dir: str | Path, student_run: str | Path) -> Path:
    """Put a distilled student (``parla distill`` run) into a model folder, beside its teacher."""
    folder, run = Path(model_dir), Path(student_run)
    for f in (folder / "config.json", run / "state.json", run / "refiner.safetensors"):
        if not f.is_file():
            raise ModelNotFoundError(f"{f}: missing (a model folder and a finished 'parla distill' run are needed)")
    config = json.loads((folder / "config.json").read_text())
    state = json.loads((run / "state.json").read_text())
    shutil.copyfile(run / "refiner.safetensors", folder / "student.safetensors")
    config["student"] = {
        "version": f"student-step{state['step']}",
        "refiner": state["refiner"],
        "teacher": state.get("teacher_version"),
        "distill": state["train"],
        "data": state["data"],
        "photos": state.get("photos"),
    }
    config["sha256"]["student.safetensors"] = sha256(folder / "student.safetensors")
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder


def add_edge(model_dir: str | Path, export_dir: str | Path, files: list[str], *, keep: bool = False) -> Path:
    """Copy exported edge models (``parla export`` output) into ``model_dir/edge`` with their sha256; ``keep``: the
    folder's other edge models stay listed (adding one file), else the list is the given files."""
    folder, src = Path(model_dir), Path(export_dir)
    edge = folder / "edge"
    edge.mkdir(exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    digests = dict(config.get("edge", {})) if keep else {}
    for name in files:
        for f in [src / name] + ([src / name.replace(".xml", ".bin")] if name.endswith(".xml") else []):
            if not f.is_file():
                raise ModelNotFoundError(f"{f}: missing; run 'parla export' first")
            shutil.copyfile(f, edge / f.name)
            digests[f.name] = sha256(edge / f.name)
    config["edge"] = digests
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return edge
