"""Assemble a deployable model folder (config.json + weights + basis, with sha256) from a teacher run and a
motion run; `parla/assets/default/` is made this way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from parla.errors import ModelNotFoundError
from parla.media.files import write_text_atomic
from parla.training.checkpoint import sha256


def make_bundle(teacher_run: str | Path, motion_run: str | Path, out_dir: str | Path) -> Path:
    t, m, out = Path(teacher_run), Path(motion_run), Path(out_dir)
    for f in (t / "state.json", t / "refiner.safetensors", m / "config.json", m / "motion.safetensors",
              m / "basis.npz"):
        if not f.is_file():
            raise ModelNotFoundError(f"{f}: missing; train the teacher and the motion model first")
    state = json.loads((t / "state.json").read_text())
    motion = json.loads((m / "config.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    for src, name in ((t / "refiner.safetensors", "refiner.safetensors"), (m / "motion.safetensors",
                                                                          "motion.safetensors"),
                      (m / "basis.npz", "basis.npz")):
        shutil.copyfile(src, out / name)
    config = {
        "version": f"teacher-step{state['step']}",
        "refiner": state["refiner"], "motion": motion["motion"],
        "mel_mean": motion["mel_mean"], "mel_std": motion["mel_std"],
        "head": motion["head"], "blink": motion["blink"], "articulation_gain": motion.get("articulation_gain", 1.0),
        "training": {"teacher_steps": state["step"], "teacher_train": state["train"], "teacher_data": state["data"],
                     "motion_train": motion["train"], "motion_final": motion.get("final"),
                     "motion_data": motion["data"]},
        "sha256": {n: sha256(out / n) for n in ("refiner.safetensors", "motion.safetensors", "basis.npz")},
    }
    write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    return out
