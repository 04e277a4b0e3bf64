"""Compose a frame at the photo's own resolution (issue 13): the spline warp applied to the photo itself, the
refiner's change added only where something must be painted, the result blended into the photo.

The refiner works on a 256² aligned crop (at 128²), which is several times coarser than the face of a good photo.
Warping that crop and pasting it back upscaled blurred the whole face. Instead, per frame:
- the warp's backward map (smooth, computed in crop coordinates) is looked up at every photo pixel of the face's
  footprint and the *photo* is remapped with it, so skin, eyes, hair and clothes keep the photo's own pixels;
- the refiner's change (``mask * (rgb - warped)``, at its resolution) is restricted to the paint region (mouth,
  lips, eyelids: ``paint_region``) and added, upsampled, on top;
- the footprint is blended into the photo with the feathered crop border (the warp is the identity there).
"""

from __future__ import annotations

import numpy as np

from parla.errors import require
from parla.face.align import Alignment, feather_mask, footprint

MOUTH_GROW = 1.35  # the outer-lip polygon scaled about its centre: lips and the skin they move
EYE_GROW = 1.7  # each eye polygon scaled about its centre: the lids
REGION_SOFT = 0.02  # Gaussian sigma of the region's edge, as a fraction of the crop side


def paint_region(driving: np.ndarray, res: int, crop_size: int = 256) -> np.ndarray:
    """(res, res) float32 in [0, 1]: where the refiner may paint, from the driving landmarks (crop pixels)."""
    cv2 = require("cv2", "core")
    pts = driving.astype(np.float64) * (res / crop_size)
    region = np.zeros((res, res), np.float32)
    for idx, grow in ((range(48, 60), MOUTH_GROW), (range(36, 42), EYE_GROW), (range(42, 48), EYE_GROW)):
        poly = pts[list(idx)]
        c = poly.mean(0)
        cv2.fillPoly(region, [np.round((c + (poly - c) * grow) * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    sigma = REGION_SOFT * res
    return cv2.GaussianBlur(region, (0, 0), sigma)


class NativeCompositor:
    """For one photo and its face alignment: every footprint pixel's crop coordinates and the feathered blend
    alpha, computed once; per frame, the photo warped at its resolution plus the refiner's painted change."""

    def __init__(self, image: np.ndarray, alignment: Alignment) -> None:
        self.cv2 = cv2 = require("cv2", "core")
        self.image, self.alignment = image, alignment
        fp = footprint(image.shape, alignment)
        self.empty = fp is None
        if fp is None:
            return
        self.box, inv, self.size = fp
        x0, y0, x1, y1 = self.box
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        m = alignment.matrix
        self.cx = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).astype(np.float32)  # crop coords of each photo pixel
        self.cy = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).astype(np.float32)
        alpha = cv2.warpAffine(
            feather_mask(alignment.size), inv, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        self.alpha = alpha[..., None]
        self.bg = image[y0:y1, x0:x1].astype(np.float32)

    def __call__(self, mx: np.ndarray, my: np.ndarray, change: np.ndarray | None) -> np.ndarray:
        """A copy of the photo with the face warped by the crop-space backward map (``mx``, ``my``: crop x, y
        sampled by each crop pixel) and ``change`` ((r, r, 3) float, grey levels, crop-aligned) added."""
        out = self.image.copy()
        if self.empty:
            return out
        cv2, inv = self.cv2, self.alignment.inverse
        # the backward map in photo coordinates, then looked up at each footprint pixel's crop position
        ix = (inv[0, 0] * mx + inv[0, 1] * my + inv[0, 2]).astype(np.float32)
        iy = (inv[1, 0] * mx + inv[1, 1] * my + inv[1, 2]).astype(np.float32)
        px = cv2.remap(ix, self.cx, self.cy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        py = cv2.remap(iy, self.cx, self.cy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        patch = cv2.remap(self.image, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        if change is not None:
            r = change.shape[0] / self.alignment.size  # refiner pixels per crop pixel (half-pixel centres)
            lx, ly = (self.cx + 0.5) * r - 0.5, (self.cy + 0.5) * r - 0.5
            patch += cv2.remap(change.astype(np.float32), lx, ly, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        x0, y0, x1, y1 = self.box
        blended = self.bg + self.alpha * (patch - self.bg)
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out
