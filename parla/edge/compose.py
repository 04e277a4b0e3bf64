"""Host-side composition of the refiner output into the full-resolution crop (numpy + OpenCV), the same
arithmetic as ``parla.models.refiner.compose`` (bilinear, half-pixel centres) without torch."""

from __future__ import annotations

import numpy as np

from parla.errors import require


def to_input(warped_lr: np.ndarray, source_lr: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """(r, r, 3) uint8 x2 + (C, r, r) float -> the exported refiner's input (1, 3 + 3 + C, r, r) float32."""
    imgs = [a.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0 for a in (warped_lr, source_lr)]
    return np.concatenate(imgs + [cond.astype(np.float32)])[None]


def compose(warped: np.ndarray, x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """warped (S, S, 3) uint8 full-res crop, x (9, r, r) refiner input, y (4, r, r) its output -> (S, S, 3) uint8."""
    cv2 = require("cv2", "core")
    size = (warped.shape[1], warped.shape[0])
    rgb = y[:3].transpose(1, 2, 0)
    if mode == "full":
        out = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    else:
        delta = y[3:4].transpose(1, 2, 0) * (rgb - x[:3].transpose(1, 2, 0))
        out = warped.astype(np.float32) / 127.5 - 1.0 + cv2.resize(delta, size, interpolation=cv2.INTER_LINEAR)
    return ((np.clip(out, -1, 1) + 1) * 127.5 + 0.5).astype(np.uint8)
