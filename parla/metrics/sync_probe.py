"""The lip-sync probes: ridge regressions from a +-0.2 s window of audio features to the mouth opening.

Two feature sets (docs/metrics.md): log-mel (``sync_probe.npz``, the probe of every report) and the phoneme
encoder's state (``sync_probe_phonemes.npz``: hama's 256-d state projected on 64 principal components). On the
eval set's real videos the phoneme probe gives a median sync confidence of 0.38 against 0.25, with the
swapped-audio control near 0 for both: it sees real lips better.

No SyncNet weights can be had offline, and the raw speech envelope is a weak lip-sync signal (docs/metrics.md:
a swapped-audio control scored almost as high as the real clips). This probe is a linear "SyncNet" fitted on
real talking videos of ../shared/data/train only. At evaluation, its audio-only prediction of the mouth opening
is cross-correlated with the mouth opening seen in the video. It is not the generator's audio model: it is linear,
sees no video, and the generator never uses it.
"""

from __future__ import annotations

import functools
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
ASSET_PHONEMES = "sync_probe_phonemes.npz"
PH_TAPS = np.arange(-20, 21, 4)  # mel frames around the video frame: +-0.2 s, every 40 ms
PH_DIMS = 64  # principal components of the encoder's state kept
PH_RIDGE = 100_000.0  # chosen by cross-validation holding out whole sources (benchmarks/probe_features.py)


@dataclass(frozen=True)
class SyncProbe:
    mean: np.ndarray  # (F,) feature mean
    std: np.ndarray  # (F,) feature std
    weights: np.ndarray  # (F,)
    meta: dict
    pca: np.ndarray | None = None  # (256, PH_DIMS): phoneme probes only

    @property
    def kind(self) -> str:
        return str(self.meta.get("features", "log-mel"))

    def predict(self, audio: np.ndarray, fps: float, n_frames: int, *, mel: np.ndarray | None = None) -> np.ndarray:
        """Expected (detrended, standardised) mouth opening per video frame, from the audio alone.
        ``mel``: the audio's log-mel when the caller already has it."""
        if self.kind == "phonemes":
            assert self.pca is not None
            n_mel = len(log_mel(audio)) if mel is None else len(mel)
            x = phoneme_features(phoneme_states(audio, n_mel), self.pca, fps, n_frames)
        else:
            x = features(audio, fps, n_frames, mel=mel)
        return ((x - self.mean) / self.std) @ self.weights

    def save(self, path: str | os.PathLike) -> None:
        from parla.files import atomic_output

        buf = io.BytesIO()
        arrays = {"mean": self.mean, "std": self.std, "weights": self.weights, "meta": np.array(json.dumps(self.meta))}
        if self.pca is not None:
            arrays["pca"] = self.pca
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        with atomic_output(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, asset: str = ASSET) -> SyncProbe:
        src = resources.files("parla.assets") / asset if path is None else Path(path)
        if not src.is_file():
            raise ModelNotFoundError(f"the lip-sync probe {src} is missing; fit it with 'parla eval probe'")
        with src.open("rb") as f, np.load(f) as z:
            pca = z["pca"] if "pca" in z.files else None
            return cls(z["mean"], z["std"], z["weights"], json.loads(str(z["meta"])), pca)


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


def phoneme_states(audio: np.ndarray, n_mel: int) -> np.ndarray:
    """(n_mel, 256): the phoneme encoder's state over the whole clip (offline windows), at the mel frame rate."""
    from parla.audio import phonemes as ph

    return ph.to_mel_rate(ph.encode(_encoder(), audio), n_mel)


@functools.lru_cache(maxsize=1)
def _encoder():
    from parla.audio.phonemes import PhonemeEncoder

    return PhonemeEncoder("onnxruntime")


def phoneme_features(states: np.ndarray, pca: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames, len(PH_TAPS) * PH_DIMS): the projected encoder state around each video frame, mean-normalised
    per clip (as ``features`` treats the log-mel)."""
    x = states @ pca
    x = x - x.mean(0)
    margin = int(np.abs(PH_TAPS).max())
    padded = np.pad(x, ((margin, margin), (0, 0)), mode="edge")
    centre = np.round(np.arange(n_frames) / fps * FRAMES_PER_SECOND).astype(int) + margin
    idx = np.clip(centre[:, None] + PH_TAPS[None], 0, len(padded) - 1)
    return padded[idx].reshape(n_frames, -1)


def _solve(xs: list[np.ndarray], ys: list[np.ndarray], ridge: float) -> tuple[np.ndarray, ...]:
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ y)
    return mean, std, w


def fit_probe(folder: str | os.PathLike, *, folds: int = 6, progress: bool = False, kind: str = "log-mel") -> SyncProbe:
    """Fit on every clip of ``folder`` with speech and a tracked face; reports clip-wise cross-validation.
    ``kind``: "log-mel" or "phonemes" (the encoder's state, projected on principal components fitted here)."""
    if kind not in ("log-mel", "phonemes"):
        raise ValueError(f"probe features: {kind!r} is not 'log-mel' or 'phonemes'")
    from parla.face.landmarks import mouth_opening
    from parla.face.tracks import clip_audio, list_videos, track_video
    from parla.metrics.av import mouth_target
    from parla.progress import progress as bar

    xs: list = []  # per clip: features, or (states, fps, frames, tracked) until the projection is fitted
    ys, used, skipped = [], [], {}
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
            if kind == "phonemes":
                xs.append((phoneme_states(audio, len(log_mel(audio))), track.fps, track.n_frames, ok))
            else:
                xs.append(features(audio, track.fps, track.n_frames)[ok])
            ys.append(y[ok])
            used.append(v.name)
    pca, ridge = None, RIDGE
    if kind == "phonemes":
        states = np.concatenate([x[0] for x in xs])
        states = states - states.mean(0)
        pca = np.linalg.svd(states[:: max(1, len(states) // 20_000)], full_matrices=False)[2][:PH_DIMS].T
        xs = [phoneme_features(st, pca, fps, n)[ok] for st, fps, n, ok in xs]
        ridge = PH_RIDGE
    cv = []
    for k in range(folds):
        test = set(range(k, len(xs), folds))
        mean, std, w = _solve(
            [x for i, x in enumerate(xs) if i not in test], [y for i, y in enumerate(ys) if i not in test], ridge
        )
        cv += [float(np.corrcoef(((xs[i] - mean) / std) @ w, ys[i])[0, 1]) for i in sorted(test)]
    mean, std, w = _solve(xs, ys, ridge)
    meta = {
        "features": kind,
        "clips": used,
        "skipped": skipped,
        "frames": int(sum(len(y) for y in ys)),
        "ridge": ridge,
        "cv_corr_median": float(np.median(cv)),
        "cv_corr_mean": float(np.mean(cv)),
        "folds": folds,
        "source": str(folder),
    }
    return SyncProbe(
        mean.astype(np.float32),
        std.astype(np.float32),
        w.astype(np.float32),
        meta,
        None if pca is None else pca.astype(np.float32),
    )
