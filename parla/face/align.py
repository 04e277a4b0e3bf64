"""Similarity alignment of a face into the canonical crop, its inverse, and feathered paste-back.

The crop geometry follows the FFHQ recipe (an oriented square from the eye line and the eye-to-mouth vector),
centred lower and slightly looser, so that the crop keeps hair and chin: eyes sit at ~40 % of the height,
the mouth at ~65 %, the chin at ~85 %.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from parla.errors import require
from parla.face.landmarks import MOUTH_CORNERS, eye_centres, transform_points

CROP_SIZE = 256  # px: side of the canonical face crop
CROP_SCALE = 1.1  # > 1 zooms out relative to FFHQ's crop, leaving room below the chin
CENTRE_SHIFT = 0.4  # crop centre, from the eyes towards the mouth (FFHQ: 0.1); centres the whole face
FEATHER = 0.08  # fraction of the crop side over which paste-back fades out


@dataclass(frozen=True)
class Alignment:
    """``matrix`` maps image pixels to crop pixels; ``inverse`` maps back. Both are 2x3 float64."""

    matrix: np.ndarray
    inverse: np.ndarray
    size: int = CROP_SIZE

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        return transform_points(points, self.matrix)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return transform_points(points, self.inverse)


def face_quad(landmarks: np.ndarray) -> np.ndarray:
    """Corners (top-left, bottom-left, bottom-right, top-right) of the oriented crop square in the image."""
    eye_l, eye_r = eye_centres(landmarks.astype(np.float64))
    eye_avg, eye_to_eye = (eye_l + eye_r) / 2, eye_r - eye_l
    mouth = landmarks[list(MOUTH_CORNERS)].astype(np.float64).mean(0)
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= max(np.hypot(*x), 1e-6)
    x *= CROP_SCALE * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * CENTRE_SHIFT
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def alignment_from_landmarks(landmarks: np.ndarray, size: int = CROP_SIZE) -> Alignment:
    cv2 = require("cv2", "core")
    quad = face_quad(landmarks).astype(np.float32)
    dst = np.array([[0, 0], [0, size], [size, size]], np.float32)
    m = cv2.getAffineTransform(quad[:3], dst).astype(np.float64)
    return Alignment(m, cv2.invertAffineTransform(m).astype(np.float64), size)


def crop_face(image: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Warp the image into the canonical crop; large faces are pyramid-downscaled first to avoid aliasing."""
    cv2 = require("cv2", "core")
    src, f = image, 1.0  # f: original pixels per pixel of src
    while alignment.scale * f < 0.5 and min(src.shape[:2]) > 64:
        src, f = cv2.pyrDown(src), f * 2
    a = alignment.matrix[:, :2]
    # Pixel centres: original p = f * q + (f - 1) / 2 for a pixel q of the downscaled copy.
    m = np.concatenate([a * f, (alignment.matrix[:, 2] + a @ np.full(2, (f - 1) / 2))[:, None]], axis=1)
    return cv2.warpAffine(
        src, m, (alignment.size, alignment.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> tuple[np.ndarray, Alignment]:
    a = alignment_from_landmarks(landmarks, size)
    return crop_face(image, a), a


@functools.lru_cache(maxsize=8)
def feather_mask(size: int = CROP_SIZE, feather: float = FEATHER) -> np.ndarray:
    """(size, size) float32 in [0, 1]: 1 in the middle, a smooth ramp to 0 at the crop border."""
    r = np.arange(size, dtype=np.float32) + 0.5
    d = np.minimum(r, size - r)  # distance to the nearest border along one axis
    ramp = np.clip((d - 1.0) / max(feather * size, 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible edge in the blend
    return np.minimum(ramp[:, None], ramp[None, :])


def footprint(image_shape: tuple[int, ...], alignment: Alignment):
    """Where the crop lands in the photo: ((x0, y0, x1, y1) box, the crop->box affine, (width, height)), or None
    when the crop falls outside the photo."""
    h, w = image_shape[:2]
    s = alignment.size
    corners = alignment.to_image(np.array([[0, 0], [0, s], [s, s], [s, 0]], np.float64))
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    inv = alignment.inverse.copy()
    inv[:, 2] -= (x0, y0)
    return (x0, y0, x1, y1), inv, (x1 - x0, y1 - y0)
