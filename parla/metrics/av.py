"""Talking-face metrics from a landmark track and the speech (docs/metrics.md). numpy only.

No learned sync or perceptual model (SyncNet, LPIPS, FID) can be obtained offline, so lip sync is measured
from geometry: the mouth-opening track against the speech-band energy envelope.
"""

from __future__ import annotations

import math

import numpy as np

from parla.audio.mel import FRAMES_PER_SECOND, log_mel, speech_band
from parla.face import landmarks as L

MAX_OFFSET_S = 0.2  # s: the lip-sync offset is searched within +-5 frames at 25 fps
BASELINE_S = 2.0  # s: windows of lags out to +-2 s give the "no sync" baseline
DETREND_S = 1.0  # slow drifts (head pitch, loudness) are removed with a moving mean this long
MIN_FRAMES = 8  # below this a statistic is reported as null


def speech_envelope(audio: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """Speech-band log energy (dB) of 16 kHz audio, one value per video frame (frame i centred on i / fps)."""
    return envelope_from_mel(log_mel(audio), fps, n_frames)


def envelope_from_mel(mel: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """``speech_envelope`` from an already computed log-mel (100 frames per second)."""
    energy = 10 * np.log10(np.exp(mel[:, speech_band()]).sum(1) + 1e-10)
    # Average the 100 fps feature frames that fall within each video frame.
    t = np.arange(len(energy)) / FRAMES_PER_SECOND
    idx = np.clip(np.round(t * fps).astype(int), 0, None)
    sums = np.bincount(idx, weights=energy, minlength=n_frames)[:n_frames]
    counts = np.bincount(idx, minlength=n_frames)[:n_frames]
    out = np.full(n_frames, np.nan)
    out[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return out


def fill_gaps(x: np.ndarray, max_gap: int = 5) -> np.ndarray:
    """Linearly interpolate NaN runs of at most ``max_gap`` samples; longer runs stay NaN."""
    x = np.asarray(x, np.float64).copy()
    nan = np.isnan(x)
    if nan.all() or not nan.any():
        return x
    idx = np.arange(len(x))
    filled = np.interp(idx, idx[~nan], x[~nan])
    run_start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or nan[i] != nan[run_start]:
            if nan[run_start] and i - run_start <= max_gap and run_start > 0 and i < len(x):
                x[run_start:i] = filled[run_start:i]
            run_start = i
    return x


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


def voiced_silent_masks(envelope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames clearly voiced (upper 40 % of the dB range) and clearly silent (lower 20 %, range >= 12 dB)."""
    ok = ~np.isnan(envelope)
    if ok.sum() < MIN_FRAMES:
        return np.zeros_like(ok), np.zeros_like(ok)
    lo, hi = np.percentile(envelope[ok], [5, 95])
    if hi - lo < 12.0:  # no real pause in the clip: nothing can be called silent
        return ok & (envelope > lo), np.zeros_like(ok)
    e = np.where(ok, envelope, -np.inf)
    return e > lo + 0.6 * (hi - lo), ok & (e < lo + 0.2 * (hi - lo))


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


def blink_events(ear: np.ndarray, fps: float) -> list[int]:
    """Start frames of blinks: dips of the eye aspect ratio below 75 % of its 3-s running median,
    1 frame to 0.6 s long."""
    x = fill_gaps(ear)
    half = int(1.5 * fps)
    windows = (x[max(0, i - half) : i + half + 1] for i in range(len(x)))
    base = np.array([np.nanmedian(w) if not np.isnan(w).all() else np.nan for w in windows])
    closed = (x < 0.75 * base) & ~np.isnan(x)
    max_len = max(1, int(0.6 * fps))
    starts, run = [], 0
    for i, c in enumerate(np.append(closed, False)):
        if c:
            run += 1
        else:
            if 1 <= run <= max_len:
                starts.append(i - run)
            run = 0
    return starts


def blink_rate(ear: np.ndarray, fps: float) -> float | None:
    """Blinks per minute of tracked face (see ``blink_events``)."""
    ok = ~np.isnan(ear)
    if ok.sum() < fps * 2:
        return None
    return float(len(blink_events(ear, fps)) / (ok.sum() / fps / 60.0))


# Generic 3-D positions (arbitrary units, nose tip at the origin) of six landmarks, for head-pose estimation.
_MODEL_3D = np.array(
    [
        (0.0, 0.0, 0.0),  # 30 nose tip
        (0.0, -330.0, -65.0),  # 8 chin
        (-225.0, 170.0, -135.0),  # 36 outer corner of the image-left eye
        (225.0, 170.0, -135.0),  # 45 outer corner of the image-right eye
        (-150.0, -150.0, -125.0),  # 48 mouth corner
        (150.0, -150.0, -125.0),  # 54 mouth corner
    ]
)
_MODEL_IDX = [30, 8, 36, 45, 48, 54]


def head_pose(lms: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees; NaN without a face or where the fit is implausible.

    Roll is the angle of the line between the eye centres (exact and robust). Yaw and pitch come from solvePnP
    of six landmarks on a generic face, started from a frontal pose: started from nothing, the 6-point solve
    sometimes lands on a mirrored solution (yaw -60, roll 180) that is pure noise.
    """
    from parla.errors import require

    cv2 = require("cv2", "core")
    f = float(max(width, height))
    cam = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)
    out = np.full((len(lms), 3), np.nan)
    for i, lm in enumerate(lms):
        if np.isnan(lm[0, 0]):
            continue
        le, re = L.eye_centres(lm)
        roll = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
        iod = max(float(np.linalg.norm(re - le)), 1e-6)
        rvec = np.array([[math.pi], [0.0], [0.0]])  # frontal: the model's y axis points up, the image's down
        tvec = np.array([[0.0], [0.0], [f * 450.0 / iod]])  # 450: the model's eye-corner distance
        ok, rvec, _ = cv2.solvePnP(
            _MODEL_3D,
            lm[_MODEL_IDX].astype(np.float64),
            cam,
            None,
            rvec,
            tvec,
            useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE,
        )
        if not ok:
            continue
        r, _ = cv2.Rodrigues(rvec)
        r = r @ np.diag([1.0, -1.0, -1.0])  # undo the frontal flip
        yaw = math.degrees(math.asin(-max(-1.0, min(1.0, r[2, 0]))))
        pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
        if abs(yaw) < 60 and abs(pitch) < 60:
            out[i] = (yaw, pitch, roll)
    return out


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
