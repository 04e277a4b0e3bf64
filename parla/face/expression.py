"""Motion -> driving landmarks: the expression basis (PCA of canonical landmark offsets), head pose and blink.

Canonical space: landmarks similarity-aligned to the training mean shape (Umeyama, least squares).
Expression = offsets from the clip's (or portrait's) own canonical shape, so identity is never encoded.
Head pose is applied as a rotation of the landmarks about a coarse generic depth (small yaw/pitch only), then
roll, scale and translation; the warp and the refiner turn the moved landmarks into pixels. numpy only.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parla.face.landmarks import mouth_opening

UPPER_LIDS = (37, 38, 43, 44)
LOWER_LIDS = (41, 40, 47, 46)
UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (67, 66, 65)
# When the inner lips close, the outer lip line moves with them (a lip keeps its thickness): (outer point, inner
# point it follows, share of that point's displacement). Without it, closing an open-mouthed photo's lips doubled
# their thickness (eval p16: the closed lips grew into a swollen band).
LIP_FOLLOWERS = ((50, 61, 1.0), (51, 62, 1.0), (52, 63, 1.0), (49, 61, 0.5), (53, 63, 0.5),
                 (58, 67, 1.0), (57, 66, 1.0), (56, 65, 1.0), (59, 67, 0.5), (55, 65, 0.5))  # fmt: skip
POSE_KEYS = ("yaw", "pitch", "roll", "tx", "ty", "scale")  # degrees, degrees, degrees, px, px, log-ratio


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity matrix (rotation, uniform scale, translation) mapping src (N, 2) to dst in least squares."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / max(s.var(0).sum(), 1e-12)
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    a = np.linalg.inv(m[:, :2])
    return np.concatenate([a, (-a @ m[:, 2])[:, None]], axis=1)


def generic_depth(mean_shape: np.ndarray) -> np.ndarray:
    """A coarse depth per landmark (same units as x): a curved face, nose forward. Enough for +-10 degrees."""
    c = mean_shape.mean(0)
    half_w = (mean_shape[:, 0].max() - mean_shape[:, 0].min()) / 2
    x = (mean_shape[:, 0] - c[0]) / half_w
    z = 0.45 * half_w * (1 - np.clip(x, -1, 1) ** 2)
    z[27:36] += 0.25 * half_w * np.linspace(0.3, 1.0, 9)  # nose bridge to tip stands out
    return z


@dataclass
class ExpressionBasis:
    mean_shape: np.ndarray  # (68, 2) canonical mean shape (crop pixels of the training mean)
    components: np.ndarray  # (K, 136) orthonormal rows
    stds: np.ndarray  # (K,) std of each coefficient over the training frames
    meta: dict = field(default_factory=dict)
    # drive()'s per-portrait work (canonical frame, rest offset), kept for the last portrait it was called with
    _portrait: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_components(self) -> int:
        return len(self.components)

    def canonical(self, lms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(canonical landmarks, the 2x3 matrix that took them there)."""
        m = similarity_fit(lms.astype(np.float64), self.mean_shape)
        return apply(m, lms.astype(np.float64)), m

    def encode(self, offsets: np.ndarray) -> np.ndarray:
        """Canonical offsets (..., 68, 2) -> coefficients (..., K)."""
        return offsets.reshape(*offsets.shape[:-2], -1) @ self.components.T

    def decode(self, coeffs: np.ndarray) -> np.ndarray:
        return (coeffs @ self.components).reshape(*coeffs.shape[:-1], 68, 2)

    def rest_offset(self, canon: np.ndarray) -> np.ndarray:
        """Coefficients that take a portrait's mouth (canonical landmarks) to the rest opening of the training
        clips, along the opening direction fitted on them (``meta["open_direction"]``, ``meta["rest_opening"]``;
        zeros for a basis without them).

        The network's coefficients are offsets from a speaker's median mouth, so a photo taken mid-word (mouth
        open) or tight-lipped would otherwise shift every frame by its own opening. The inner-lip gap is the one
        part of a mouth's state that can be read from a single photo without knowing the person's rest shape
        (closed lips meet whatever their shape); in the shipped basis only that part is corrected. A basis fitted
        with ``fit_rest(..., shape=True)`` (``meta["shape_shrink"]``, ``meta["shape_center"]``; measured, not
        shipped: docs/decisions.md) first moves each coefficient part of the way to the training
        speakers', taking part of a photo's lip shape as the moment's rather than the person's.
        """
        direction = self.meta.get("open_direction")
        if direction is None:
            return np.zeros(self.n_components)
        moved = np.zeros(self.n_components)
        if "shape_shrink" in self.meta:
            frame = self.encode(canon - self.mean_shape)
            moved = np.asarray(self.meta["shape_center"]) + (np.asarray(self.meta["shape_shrink"]) - 1.0) * frame
            canon = canon + self.decode(moved)
        direction = np.asarray(direction, np.float64)
        gap = float(mouth_opening(canon))
        # The direction moves the gap by ~1 per unit; measure it at this mouth so that the rest is met exactly.
        per_unit = (float(mouth_opening(canon + self.decode(0.05 * direction))) - gap) / 0.05
        if per_unit < 0.2:  # a degenerate direction or mouth: leave the gap as it is
            return moved
        return moved - (gap - float(self.meta["rest_opening"])) / per_unit * direction

    def drive(
        self,
        identity: np.ndarray,
        coeffs: np.ndarray,
        pose: np.ndarray,
        blink: float,
        mouth_close: float = 0.0,
        mouth_rest: float = 0.0,
    ) -> np.ndarray:
        """Driving landmarks in crop pixels for one frame.

        identity: (68, 2) the portrait's landmarks in crop pixels; coeffs: (K,) expression;
        pose: (6,) as POSE_KEYS, relative to the portrait; blink: 0 open .. 1 closed;
        mouth_close: 0 .. 1, how far to close the inner lips (a /p b m/; also closes a portrait's open mouth);
        mouth_rest: 0 .. 1, how far a pause has brought the mouth to the face's idle: the expression still (no
        coefficients) and the inner lips at the photo's own gap, at most the rest opening (closed lips stay closed,
        lips a little apart stay so, a photo taken mid-word rests a little apart).
        """
        key = (identity.tobytes(), self.meta.get("rest_opening"))
        if self._portrait is None or self._portrait[0] != key:  # once per portrait, not per frame
            canon, m = self.canonical(identity)
            idle = min(float(mouth_opening(canon)), float(self.meta.get("rest_opening", 0.0)))
            self._portrait = (key, canon, m, self.rest_offset(canon), idle)
        _, canon, m, rest, idle = self._portrait
        rest_amount = float(np.clip(mouth_rest, 0.0, 1.0))
        # a pause: the expression goes to the median speaker's (coefficient zero: the rest opening), then the lips
        # close from there to the idle gap, both as far as the pause has come
        shape = canon + self.decode((1.0 - rest_amount) * coeffs + rest)
        shape = _close_pairs(shape, blink, UPPER_LIDS, LOWER_LIDS)
        if rest_amount > 0.0:
            now = float(mouth_opening(shape))
            mouth_close = max(mouth_close, rest_amount * max(0.0, 1.0 - idle / now) if now > 1e-9 else 0.0)
        closed = _close_pairs(shape, mouth_close, UPPER_INNER_LIP, LOWER_INNER_LIP)
        for outer, inner, share in LIP_FOLLOWERS:
            closed[outer] += share * (closed[inner] - shape[inner])
        shape = closed
        shape = _rotate(shape, self.mean_shape, pose)
        return apply(invert(m), shape)

    def save(self, path: str | os.PathLike) -> None:
        from parla.files import atomic_output

        buf = io.BytesIO()
        np.savez(
            buf,
            mean_shape=self.mean_shape,
            components=self.components,
            stds=self.stds,
            meta=np.array(json.dumps(self.meta)),
        )
        with atomic_output(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExpressionBasis:
        with open(Path(path), "rb") as f, np.load(f) as z:
            return cls(z["mean_shape"], z["components"], z["stds"], json.loads(str(z["meta"])))


def _close_pairs(shape: np.ndarray, amount: float, upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """Move each upper/lower point pair towards its midpoint (1 = they meet)."""
    b = float(np.clip(amount, 0.0, 1.0))
    if b == 0.0:
        return shape
    out = shape.copy()
    for up, lo in zip(upper, lower, strict=True):
        mid = 0.5 * (shape[up] + shape[lo])
        out[up] = shape[up] + b * (mid - shape[up])
        out[lo] = shape[lo] + b * (mid - shape[lo])
    return out


def _rotate(shape: np.ndarray, mean_shape: np.ndarray, pose: np.ndarray) -> np.ndarray:
    yaw, pitch, roll, tx, ty, log_s = (float(v) for v in pose)
    c = shape.mean(0)
    p = shape - c
    z = generic_depth(mean_shape)
    z = z - z.mean()
    cy, sy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    cp, sp = np.cos(np.radians(pitch)), np.sin(np.radians(pitch))
    x = p[:, 0] * cy + z * sy  # yaw about the vertical axis (orthographic)
    zz = -p[:, 0] * sy + z * cy
    y = p[:, 1] * cp - zz * sp  # pitch about the horizontal axis
    cr, sr = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    rx, ry = x * cr - y * sr, x * sr + y * cr
    s = np.exp(log_s)
    return np.stack([rx * s + c[0] + tx, ry * s + c[1] + ty], axis=1)
