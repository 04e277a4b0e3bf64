"""Frames for INT8 calibration and parity: refiner inputs (and the full-resolution warped crops) drawn as
self-reenactment pairs from a prepared dataset, or as synthetic motions of a portrait when no dataset exists.

Calibration uses training frames (``../shared/data/train``); parity uses held-back frames (``../shared/data/eval``
videos), never the other way round.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.errors import ParlaError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mov", ".avi", ".mkv")


@dataclass
class Samples:
    x: np.ndarray  # (N, 9, r, r) float32 refiner inputs
    warped: np.ndarray  # (N, S, S, 3) uint8 full-resolution warped crops
    source: str  # where they came from (for the report)
    target: np.ndarray | None = None  # (N, S, S, 3) uint8 real target frames (dataset pairs only)


def from_dataset(data_dir: str | Path, n: int, res: int, seed: int) -> Samples:
    from parla.training.data import PairSampler, load_clips

    b = PairSampler(load_clips(data_dir), res, seed=seed, flip=False).batch(n)
    x = np.concatenate([b["warped_lr"], b["source_lr"], b["cond"]], 1).astype(np.float32)
    warped, target = (((b[k].transpose(0, 2, 3, 1) + 1) * 127.5 + 0.5).astype(np.uint8) for k in ("warped", "target"))
    return Samples(x, warped, f"{n} self-reenactment pairs of {data_dir}", target)


def from_portrait(path: str | Path, basis, n: int, res: int, seed: int) -> Samples:
    """Synthetic motions (random expression, pose, blink) of one portrait: for machines without a dataset."""
    from parla.face.portrait import Portrait
    from parla.training.distill import SyntheticSampler

    p = Portrait.load(path, res)
    b = SyntheticSampler([(p.crop, p.landmarks)], basis, res, seed).batch(n)
    x = np.concatenate([b["warped_lr"], b["source_lr"], b["cond"]], 1).astype(np.float32)
    warped = ((b["warped"].transpose(0, 2, 3, 1) + 1) * 127.5 + 0.5).astype(np.uint8)
    return Samples(x, warped, f"{n} synthetic motions of {Path(path).name}")


@contextmanager
def prepared(videos_dir: Path, max_clips: int, show: bool):
    """A temporary dataset made from the first ``max_clips`` videos of a folder (sidecar .wav files kept)."""
    from parla.training.prepare import prepare_dataset

    videos = sorted(p for p in videos_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)[:max_clips]
    if not videos:
        raise ParlaError(f"{videos_dir}: no videos to take frames from")
    with tempfile.TemporaryDirectory(prefix="parla-frames-") as tmp:
        src = Path(tmp) / "videos"
        src.mkdir()
        for v in videos:
            for f in (v, v.with_suffix(".wav")):
                if f.is_file():
                    os.symlink(f.resolve(), src / f.name)
        prepare_dataset(src, Path(tmp) / "data", show=show, persons=False)
        yield Path(tmp) / "data"


def gather(
    spec: str | None, default_videos: Path, n: int, res: int, seed: int, *, max_clips: int, show: bool, fallback=None
) -> Samples:
    """Samples from ``spec`` (a prepared dataset or a folder of videos; ``demo``: ``fallback()``), else from
    ``default_videos`` if it exists, else ``fallback()`` (or an error)."""
    if spec == "demo" and fallback is not None:
        return fallback()
    path = Path(spec) if spec else default_videos
    if (path / "clips").is_dir():
        return from_dataset(path, n, res, seed)
    if path.is_dir():
        with prepared(path, max_clips, show) as data:
            s = from_dataset(data, n, res, seed)
        s.source = f"{n} self-reenactment pairs from {min(max_clips, _count(path))} videos of {path}"
        return s
    if spec:
        raise ParlaError(f"{spec}: not a prepared dataset or a folder of videos")
    if fallback is None:
        raise ParlaError(f"{default_videos}: not found; give frames with --calib DATASET_OR_VIDEOS")
    return fallback()


def _count(path: Path) -> int:
    return sum(1 for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
