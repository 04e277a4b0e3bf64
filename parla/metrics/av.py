"""Talking-face metrics from a landmark track and the speech (docs/metrics.md). numpy only.

No learned sync or perceptual model (SyncNet, LPIPS, FID) can be obtained offline, so lip sync is measured
from geometry: the mouth-opening track against the speech-band energy envelope.
"""

from __future__ import annotations

import math

import numpy as np

from parla.audio.signals import envelope_from_mel, speech_envelope, voiced_silent_masks
from parla.face import landmarks as L
from parla.face.signals import blink_events, fill_gaps, head_pose

__all__ = ["blink_events", "envelope_from_mel", "fill_gaps", "head_pose", "speech_envelope", "voiced_silent_masks"]

MAX_OFFSET_S = 0.2  # s: the lip-sync offset is searched within +-5 frames at 25 fps
BASELINE_S = 2.0  # s: windows of lags out to +-2 s give the "no sync" baseline
DETREND_S = 1.0  # slow drifts (head pitch, loudness) are removed with a moving mean this long
MIN_FRAMES = 8  # below this a statistic is reported as null


def detrend(x: np.ndarray, window: int) -> np.ndarray:
    """Subtract a centred moving mean (NaN-aware)."""
    valid = ~np.isnan(x)
    k = np.ones(max(1, min(window, len(x))))  # np.convolve("same") would lengthen a clip shorter than k
    s = np.convolve(np.where(valid, x, 0.0), k, mode="same")
    n = np.convolve(valid.astype(float), k, mode="same")
    return np.where(valid & (n > 0), x - s / np.maximum(n, 1), np.nan)


def lagged_correlation(video: np.ndarray, audio: np.ndarray, lag: int) -> float:
    """Pearson correlation of video[t + lag] with audio[t] over frames where both exist."""
    if lag >= 0:
        v, a = video[lag:], audio[: len(audio) - lag]
    else:
        v, a = video[: len(video) + lag], audio[-lag:]
    n = min(len(v), len(a))
    v, a = v[:n], a[:n]
    ok = ~(np.isnan(v) | np.isnan(a))
    if ok.sum() < MIN_FRAMES:
        return float("nan")
    v, a = v[ok] - v[ok].mean(), a[ok] - a[ok].mean()
    denom = math.sqrt(float((v * v).sum() * (a * a).sum()))
    return float((v * a).sum() / denom) if denom > 1e-12 else 0.0


def mouth_target(mouth: np.ndarray, fps: float) -> np.ndarray:
    """The mouth-opening track with slow drifts removed and unit variance (NaN where no face)."""
    m = detrend(fill_gaps(mouth), max(3, int(round(DETREND_S * fps))))
    return (m - np.nanmean(m)) / (np.nanstd(m) + 1e-6)


def lip_sync(mouth: np.ndarray, predicted: np.ndarray, fps: float) -> tuple[int | None, float | None, float | None]:
    """(offset in frames, confidence, peak correlation) of a mouth-opening track against the lip-sync probe's
    audio-only prediction of it. Offset > 0: the mouth moves after the sound.

    Confidence = the peak correlation within +-MAX_OFFSET_S minus the median of the peaks of equally wide
    windows at lags out to +-BASELINE_S. Chance correlations of unrelated signals are about as high in every
    window, so unsynchronised video scores ~0 however smooth its signals are; the plain peak does not.
    """
    m = mouth_target(mouth, fps)
    near, far = int(round(MAX_OFFSET_S * fps)), int(round(BASELINE_S * fps))
    lags = np.arange(-far, far + 1)
    corr = np.array([lagged_correlation(m, predicted, int(k)) for k in lags])
    inside = np.abs(lags) <= near
    if np.isnan(corr[inside]).all():
        return None, None, None
    best = int(np.nanargmax(np.where(inside, corr, -np.inf)))
    width = 2 * near + 1
    starts = list(range(-far, -near - width + 1, width)) + list(range(near + 1, far - width + 2, width))
    peaks = [
        np.nanmax(c)
        for c in (corr[(lags >= s0) & (lags < s0 + width)] for s0 in starts)
        if len(c) and not np.isnan(c).all()
    ]
    baseline = float(np.median(peaks)) if peaks else 0.0
    return int(lags[best]), float(corr[best] - baseline), float(corr[best])


def mouth_activity(mouth: np.ndarray, envelope: np.ndarray) -> dict[str, float | None]:
    """Mouth speed (|d opening / frame|) voiced vs silent, and the mean opening in each."""
    voiced, silent = voiced_silent_masks(envelope)
    speed = np.abs(np.diff(mouth, prepend=np.nan))
    out: dict[str, float | None] = {"ratio": None, "open_voiced": None, "open_silent": None}
    v, s = voiced & ~np.isnan(speed), silent & ~np.isnan(speed)
    if v.sum() >= MIN_FRAMES:
        out["open_voiced"] = float(np.mean(mouth[v]))
    if s.sum() >= MIN_FRAMES:
        out["open_silent"] = float(np.mean(mouth[s]))
        if v.sum() >= MIN_FRAMES:
            out["ratio"] = float(np.mean(speed[v]) / max(np.mean(speed[s]), 1e-6))
    return out


def blink_rate(ear: np.ndarray, fps: float) -> float | None:
    """Blinks per minute of tracked face (see ``blink_events``)."""
    ok = ~np.isnan(ear)
    if ok.sum() < fps * 2:
        return None
    return float(len(blink_events(ear, fps)) / (ok.sum() / fps / 60.0))


def head_motion(lms: np.ndarray, fps: float, width: int, height: int) -> dict[str, float | None]:
    """Spread and speed of head rotation (degrees) and of the face centre (in inter-ocular distances)."""
    pose = head_pose(lms, width, height)
    ok = ~np.isnan(pose[:, 0])
    keys = ("yaw_std", "pitch_std", "roll_std", "angular_speed", "translation_std")
    if ok.sum() < MIN_FRAMES:
        return dict.fromkeys(keys)
    yaw, pitch, roll = (pose[ok, k] for k in range(3))
    # Speed from a 5-frame moving average: landmark noise alone would read as ~10 deg/s on a still video.
    k = np.ones(5) / 5
    smooth = np.stack([np.convolve(fill_gaps(pose[:, j]), k, mode="valid") for j in range(3)], axis=1)
    step = np.linalg.norm(np.diff(smooth, axis=0), axis=1)
    centre = lms[:, L.NOSE, :].mean(1) / L.interocular(lms)[:, None]
    return {
        "yaw_std": float(np.std(yaw)),
        "pitch_std": float(np.std(pitch)),
        "roll_std": float(np.std(roll)),
        "angular_speed": float(np.nanmedian(step) * fps),  # degrees per second
        "translation_std": float(np.linalg.norm(np.nanstd(centre, axis=0))),
    }


def landmark_jitter(lms: np.ndarray) -> float | None:
    """Median over frames of the mean second difference of the landmarks, in inter-ocular distances.

    Smooth motion has a small second difference; detector noise and flicker make it large.
    """
    acc = lms[2:] - 2 * lms[1:-1] + lms[:-2]
    per_frame = np.linalg.norm(acc, axis=-1).mean(-1) / L.interocular(lms[1:-1])
    per_frame = per_frame[~np.isnan(per_frame)]
    return float(np.median(per_frame)) if len(per_frame) >= MIN_FRAMES else None


def identity_distance(portrait_embedding: np.ndarray, frame_embeddings: np.ndarray) -> float | None:
    """Median L2 distance between the portrait's and the frames' dlib embeddings (same person below ~0.6)."""
    if len(frame_embeddings) == 0:
        return None
    return float(np.median(np.linalg.norm(frame_embeddings - portrait_embedding[None], axis=1)))
