"""Face signals from a landmark track: gaps filled, blinks found, head pose solved. numpy (and OpenCV for the pose);
shared by the metrics, data preparation and training (``parla.metrics.av``, ``parla.training``)."""

from __future__ import annotations

import math

import numpy as np

from parla.face import landmarks as L


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
