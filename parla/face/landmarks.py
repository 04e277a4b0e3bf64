"""Geometry on 68-point landmarks (iBUG 300-W layout, 0-based indices). numpy only."""

from __future__ import annotations

import numpy as np

JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)  # the subject's right, image left
LEFT_BROW = slice(22, 27)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
OUTER_LIPS = slice(48, 60)
INNER_LIPS = slice(60, 68)
NOSE_TIP = 30
CHIN = 8
MOUTH_CORNERS = (48, 54)
# Inner-lip pairs (upper, lower) whose vertical gaps measure how far the mouth is open.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) centres; ``lm`` is (..., 68, 2)."""
    return lm[..., RIGHT_EYE, :].mean(axis=-2), lm[..., LEFT_EYE, :].mean(axis=-2)


def interocular(lm: np.ndarray) -> np.ndarray:
    a, b = eye_centres(lm)
    return np.linalg.norm(b - a, axis=-1)


def mouth_opening(lm: np.ndarray) -> np.ndarray:
    """Mean inner-lip gap divided by the inter-ocular distance: ~0 closed, ~0.3-0.6 wide open."""
    gaps = [np.linalg.norm(lm[..., u, :] - lm[..., d, :], axis=-1) for u, d in INNER_LIP_PAIRS]
    return np.mean(gaps, axis=0) / np.maximum(interocular(lm), 1e-6)


def eye_aspect_ratio(lm: np.ndarray) -> np.ndarray:
    """Mean eye aspect ratio of both eyes (Soukupova & Cech 2016): ~0.3 open, < 0.15 closed."""

    def ear(eye: np.ndarray) -> np.ndarray:
        v = np.linalg.norm(eye[..., 1, :] - eye[..., 5, :], axis=-1) + np.linalg.norm(
            eye[..., 2, :] - eye[..., 4, :], axis=-1
        )
        h = np.linalg.norm(eye[..., 0, :] - eye[..., 3, :], axis=-1)
        return v / np.maximum(2.0 * h, 1e-6)

    return 0.5 * (ear(lm[..., RIGHT_EYE, :]) + ear(lm[..., LEFT_EYE, :]))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points."""
    return points @ matrix[:, :2].T + matrix[:, 2]
