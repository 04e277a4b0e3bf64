"""Self-reenactment: animate each real clip's first frame with the clip's own audio and compare the mouth with
the real frames (mouth landmark distance, LMD), against the still-first-frame baseline (docs/quality.md)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from parla.face import landmarks as L
from parla.metrics.report import clip_audio, list_videos
from parla.metrics.tracks import track_video

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


def reenact_clip(bundle, video: Path, *, seed: int = 0) -> dict[str, Any]:
    from parla.face.detect import detect_faces, select_face
    from parla.media.video import VideoWriter, iter_frames, probe_video
    from parla.pipeline import portrait_from_face, render_frames

    info = probe_video(video)
    audio, _ = clip_audio(video, None)
    if audio is None:
        return {"file": video.name, "lmd": None, "lmd_still": None, "note": "no audio"}
    real = track_video(video)
    _, first = next(iter(iter_frames(video)))
    face = select_face(detect_faces(first), 0, name=video.name)
    portrait = portrait_from_face(first, face.landmarks, bundle.refiner_cfg.res)
    motion = bundle.motion(audio, info.fps, real.n_frames, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen.mp4"
        with VideoWriter(out, info.fps, audio=audio[: int(real.n_frames / info.fps * 16000)]) as w:
            for frame in render_frames(bundle, portrait, motion):
                w.write(frame)
        gen = track_video(out)
    still = np.repeat(real.landmarks[:1], real.n_frames, 0)
    lmd, lmd_still = mouth_lmd(gen.landmarks, real.landmarks), mouth_lmd(still, real.landmarks)
    gain = None if not (lmd and lmd_still) else 1 - lmd / lmd_still
    return {"file": video.name, "lmd": lmd, "lmd_still": lmd_still, "improvement": gain}


def evaluate_reenactment(folder: str | os.PathLike, *, model: str | os.PathLike | None = None,
                         net: str = "teacher", progress: bool = False) -> dict[str, Any]:
    from parla.assets import bundled_model
    from parla.progress import progress as bar
    from parla.wrapper import ModelBundle

    bundle = ModelBundle(model or bundled_model(), net=net)
    videos = list_videos(folder)
    clips = []
    with bar(len(videos), "reenacting", enabled=progress, unit="clip") as b:
        for v in videos:
            clips.append(reenact_clip(bundle, v))
            b.update(1)
    ok = [c for c in clips if c["lmd"] is not None and c["lmd_still"] is not None]
    lmd = float(np.mean([c["lmd"] for c in ok])) if ok else None
    still = float(np.mean([c["lmd_still"] for c in ok])) if ok else None
    return {"mode": "reenact", "folder": str(folder), "clips": clips,
            "summary": {"lmd": lmd, "lmd_still": still,
                        "improvement": None if not (lmd and still) else 1 - lmd / still}}
