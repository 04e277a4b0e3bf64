"""The lip-sync probe: a ridge regression from a +-0.2 s window of log-mel to the mouth opening.

No SyncNet weights can be had offline, and the raw speech envelope is a weak lip-sync signal (docs/metrics.md:
a swapped-audio control scored almost as high as the real clips). This probe is a linear "SyncNet" fitted on
real talking videos of ../shared/data/train only. At evaluation, its audio-only prediction of the mouth opening
is cross-correlated with the mouth opening seen in the video. It is not the generator's audio model: it is linear,
sees no video, and the generator never uses it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from parla.audio.mel import FRAMES_PER_SECOND, N_MELS, log_mel
from parla.errors import ModelNotFoundError

BANDS = 20  # the 80 mel bins are averaged in groups of 4
TAPS = np.arange(-20, 21, 2)  # mel frames (10 ms) around the video frame: +-0.2 s, every 20 ms
RIDGE = 10_000.0  # regularisation, chosen by 6-fold clip-wise cross-validation (docs/metrics.md)
MIN_SPEECH_RMS = 10 ** (-50 / 20)  # clips quieter than this hold no speech and are left out of the fit
ASSET = "sync_probe.npz"


@dataclass(frozen=True)
class SyncProbe:
    mean: np.ndarray  # (F,) feature mean
    std: np.ndarray  # (F,) feature std
    weights: np.ndarray  # (F,)
    meta: dict

    def predict(self, audio: np.ndarray, fps: float, n_frames: int, *, mel: np.ndarray | None = None) -> np.ndarray:
        """Expected (detrended, standardised) mouth opening per video frame, from the audio alone.
        ``mel``: the audio's log-mel when the caller already has it."""
        return ((features(audio, fps, n_frames, mel=mel) - self.mean) / self.std) @ self.weights

    def save(self, path: str | os.PathLike) -> None:
        from parla.files import atomic_output

        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, std=self.std, weights=self.weights, meta=np.array(json.dumps(self.meta)))
        with atomic_output(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> SyncProbe:
        src = resources.files("parla.assets") / ASSET if path is None else Path(path)
        if not src.is_file():
            raise ModelNotFoundError(f"the lip-sync probe {src} is missing; fit it with 'parla eval probe'")
        with src.open("rb") as f, np.load(f) as z:
            return cls(z["mean"], z["std"], z["weights"], json.loads(str(z["meta"])))


def features(audio: np.ndarray, fps: float, n_frames: int, *, mel: np.ndarray | None = None) -> np.ndarray:
    """(n_frames, len(TAPS) * BANDS): log-mel bands around each video frame, mean-normalised per clip."""
    mel = log_mel(audio) if mel is None else mel
    mel = mel.reshape(len(mel), BANDS, N_MELS // BANDS).mean(2)
    mel = mel - mel.mean(0)  # removes the channel (microphone, room) per clip
    margin = int(np.abs(TAPS).max())
    padded = np.pad(mel, ((margin, margin), (0, 0)), mode="edge")
    centre = np.round(np.arange(n_frames) / fps * FRAMES_PER_SECOND).astype(int) + margin
    idx = np.clip(centre[:, None] + TAPS[None], 0, len(padded) - 1)
    return padded[idx].reshape(n_frames, -1)


def _solve(xs: list[np.ndarray], ys: list[np.ndarray], ridge: float) -> tuple[np.ndarray, ...]:
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ y)
    return mean, std, w


def fit_probe(folder: str | os.PathLike, *, folds: int = 6, progress: bool = False) -> SyncProbe:
    """Fit on every clip of ``folder`` with speech and a tracked face; reports clip-wise cross-validation."""
    from parla.face.landmarks import mouth_opening
    from parla.metrics.av import mouth_target
    from parla.metrics.tracks import clip_audio, list_videos, track_video
    from parla.progress import progress as bar

    xs, ys, used, skipped = [], [], [], {}
    videos = list_videos(folder)
    with bar(len(videos), "fitting the lip-sync probe", enabled=progress, unit="clip") as b:
        for v in videos:
            b.update(1)
            audio, _ = clip_audio(v, None)
            if audio is None or float(np.sqrt(np.mean(audio**2))) < MIN_SPEECH_RMS:
                skipped[v.name] = "no speech in the audio"
                continue
            track = track_video(v)
            y = mouth_target(mouth_opening(track.landmarks), track.fps)
            ok = ~np.isnan(y)
            if ok.sum() < 20:
                skipped[v.name] = "face tracked in fewer than 20 frames"
                continue
            xs.append(features(audio, track.fps, track.n_frames)[ok])
            ys.append(y[ok])
            used.append(v.name)
    cv = []
    for k in range(folds):
        test = set(range(k, len(xs), folds))
        mean, std, w = _solve(
            [x for i, x in enumerate(xs) if i not in test], [y for i, y in enumerate(ys) if i not in test], RIDGE
        )
        cv += [float(np.corrcoef(((xs[i] - mean) / std) @ w, ys[i])[0, 1]) for i in sorted(test)]
    mean, std, w = _solve(xs, ys, RIDGE)
    meta = {
        "clips": used,
        "skipped": skipped,
        "frames": int(sum(len(y) for y in ys)),
        "ridge": RIDGE,
        "cv_corr_median": float(np.median(cv)),
        "cv_corr_mean": float(np.mean(cv)),
        "folds": folds,
        "source": str(folder),
    }
    return SyncProbe(mean.astype(np.float32), std.astype(np.float32), w.astype(np.float32), meta)
