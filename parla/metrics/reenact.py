"""Self-reenactment: animate each real clip's first frame with the clip's own audio and compare the mouth with
the real frames (mouth landmark distance, LMD), against the still-first-frame baseline (docs/quality.md)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from parla.face import landmarks as L
from parla.face.tracks import clip_audio, list_videos, track_video

MOUTH = slice(48, 68)


def mouth_shape(lms: np.ndarray) -> np.ndarray:
    """(T, 20, 2) mouth landmarks relative to the mouth centre, in inter-ocular distances."""
    m = lms[:, MOUTH]
    return (m - m.mean(1, keepdims=True)) / L.interocular(lms)[:, None, None]


def mouth_lmd(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean point distance between the mouth shapes of two landmark tracks, over frames where both have a face."""
    n = min(len(a), len(b))
    d = np.linalg.norm(mouth_shape(a[:n]) - mouth_shape(b[:n]), axis=-1).mean(-1)
    d = d[~np.isnan(d)]
    return float(d.mean()) if len(d) else None


def reenact_clip(models, cfg, video: Path, *, seed: int = 0) -> dict[str, Any]:
    """One clip through the engine (``Avatar`` on the given backend), its first frame as the portrait."""
    from dataclasses import replace

    from parla.edge.avatar import Avatar
    from parla.media.video import iter_frames, probe_video

    info = probe_video(video)
    audio, _ = clip_audio(video, None)
    if audio is None:
        return {"file": video.name, "lmd": None, "lmd_still": None, "note": "no audio"}
    real = track_video(video)
    _, first = next(iter(iter_frames(video)))
    cfg = replace(cfg, video=replace(cfg.video, fps=info.fps))
    avatar = Avatar.from_image(first, cfg, models=models, face_index=0, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen.mp4"
        avatar.render(audio[: int(round(real.n_frames / info.fps * 16000))], out)
        gen = track_video(out)
    still = np.repeat(real.landmarks[:1], real.n_frames, 0)
    lmd, lmd_still = mouth_lmd(gen.landmarks, real.landmarks), mouth_lmd(still, real.landmarks)
    gain = None if not (lmd and lmd_still) else 1 - lmd / lmd_still
    return {"file": video.name, "lmd": lmd, "lmd_still": lmd_still, "improvement": gain}


def evaluate_reenactment(
    folder: str | os.PathLike, *, model: str | os.PathLike | None = None, net: str = "teacher", progress: bool = False
) -> dict[str, Any]:
    from parla.edge.backends import open_models
    from parla.edge.config import load_config
    from parla.progress import progress as bar

    cfg = load_config(
        "x86-cpu", {"backend": "torch", "device": "cpu", "precision": "fp32", "model": str(model or "default")}
    )
    models = open_models(cfg, net=net)
    videos = list_videos(folder)
    clips = []
    try:
        with bar(len(videos), "reenacting", enabled=progress, unit="clip") as b:
            for v in videos:
                clips.append(reenact_clip(models, cfg, v))
                b.update(1)
    finally:
        for m in models:
            m.close()
    ok = [c for c in clips if c["lmd"] is not None and c["lmd_still"] is not None]
    lmd = float(np.mean([c["lmd"] for c in ok])) if ok else None
    still = float(np.mean([c["lmd_still"] for c in ok])) if ok else None
    return {
        "mode": "reenact",
        "folder": str(folder),
        "clips": clips,
        "summary": {"lmd": lmd, "lmd_still": still, "improvement": None if not (lmd and still) else 1 - lmd / still},
    }
