"""Compose a frame at the photo's own resolution: the spline warp applied to the photo itself, the
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
from parla.face.mouth import MAP_BAND, changed_box

# The outer-lip polygon scaled about its centre: the lips and the skin they move. 1.35 cut through the lips of a
# pouting portrait (eval p03: a seam, sync 0.14 on s01); 1.8 covers them (0.25).
MOUTH_GROW = 1.8
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


def mouth_inside(driving: np.ndarray, res: int, crop_size: int = 256) -> np.ndarray:
    """(res, res) float32 in [0, 1]: inside the driving inner lips, softened by about a pixel. Where a frame is
    warped from an opened lip copy, the refiner's change is left out here: the copy's painted inside is what the
    lips open onto (the refiner, which never saw a painted mouth, greyed it: eval p07, teacher and student)."""
    cv2 = require("cv2", "core")
    pts = driving[60:68].astype(np.float64) * (res / crop_size)
    inside = np.zeros((res, res), np.float32)
    cv2.fillPoly(inside, [np.round(pts * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(inside, (0, 0), INSIDE_SOFT * res / crop_size)


INSIDE_SOFT = 1.0  # crop px: Gaussian sigma of ``mouth_inside``'s edge
MAP_STEP = 4  # the backward map is smooth: built on every 4th footprint pixel, then interpolated
MAP_PAD = 64  # crop px: the map extended beyond the crop (as the identity, which the warp is at its border) to
# cover the corners of the footprint's bounding box
# Resampling of the photo by footprint size: small faces keep their detail at the pixel level, so Lanczos quality;
# larger ones bicubic. A real-time stream cannot afford bicubic above 800² on 2 cores (1.2 MP: Lanczos 49 ms,
# bicubic 9 ms, bilinear 3 ms; p10 and p09 at 30 fps with bicubic: 244 and 6 frames of 1,800 dropped), so there it
# is bilinear, which costs detail on a finely textured 1-MP face (p09: 0.77 of the photo's, bicubic 1.00); a file is
# rendered as fast as it goes, so it keeps bicubic (``realtime=False``).
# Lanczos quality without its per-frame cost: OpenCV's Lanczos remap has no vector path (3.0 ms a frame for the
# demo's 202 x 201 footprint on 2 cores). The photo is still, so the neighbourhood of its footprint is upsampled
# once, x UPSAMPLE with Lanczos, and each frame remaps that copy bicubically: 0.65 ms, a Laplacian energy 1.02
# times the direct Lanczos remap's (bicubic from the photo itself: 0.91), 0.2 grey levels apart on average. The
# factor is odd so that a photo pixel is a pixel of the copy: the identity warp gives the photo back exactly.
GREY_SPREAD = 12  # grey levels between a pixel's channels below which (99 % of the face) a photo is grey
LANCZOS_MAX_PX = 512 * 512
UPSAMPLE = 3
SAMPLE_MARGIN = 16  # photo px kept around the footprint in the upsampled copy (the warp samples near its own pixel)
SAMPLE_REACH = 5  # photo px on each side that an interpolated pixel reads (Lanczos: 4, then bicubic in the copy)
CUBIC_MAX_PX = 800 * 800  # footprint px above which a real-time stream resamples bilinearly
MIX_STEP = 4  # a hand-over's second source: where it can differ is looked for on every 4th footprint pixel
MIX_GROW = 3  # ... with the box grown by this many steps (the map stretches the mouth at most ~2x between samples)


class NativeCompositor:
    """For one photo and its face alignment: the crop coordinates of the footprint's pixels (and of a coarse grid
    for the smooth map) and the feathered blend weights, computed once; per frame, the photo warped at its own
    resolution plus the refiner's painted change, blended into the photo in one OpenCV pass."""

    def __init__(
        self, image: np.ndarray, alignment: Alignment, *, copies: tuple[np.ndarray, ...] = (), realtime: bool = False
    ) -> None:
        """``copies``: other versions of the photo (same size and face; the lip copies of ``parla.face.mouth``)
        that ``sources`` may remap instead of, or blended with, the photo. ``realtime``: frames for a live stream,
        resampled bilinearly above CUBIC_MAX_PX (a file's frames: bicubic at any size)."""
        self.cv2 = cv2 = require("cv2", "core")
        self.image, self.alignment, self.images = image, alignment, (image, *copies)
        fp = footprint(image.shape, alignment)
        self.empty = fp is None
        if fp is None:
            return
        self.box, inv, self.size = fp
        x0, y0, x1, y1 = self.box
        w, h = self.size
        self.cx, self.cy = self._crop_coords(np.arange(w) + x0, np.arange(h) + y0)
        # The coarse grid sits where cv2.resize's bilinear upsampling (half-pixel centres) samples it, one cell
        # beyond the box on every side, so that the box itself is interpolated, never extrapolated.
        nx, ny = -(-w // MAP_STEP) + 2, -(-h // MAP_STEP) + 2
        self.ext = (nx * MAP_STEP, ny * MAP_STEP)
        gx, gy = self._crop_coords(
            x0 - MAP_STEP + (np.arange(nx) + 0.5) * MAP_STEP - 0.5,
            y0 - MAP_STEP + (np.arange(ny) + 0.5) * MAP_STEP - 0.5,
        )
        # The map is looked up as a displacement from the identity (zero beyond the crop, where the warp is the
        # identity), then the identity at the grid (held at MAP_PAD beyond the crop) is added back.
        self.gx, self.gy = gx, gy
        s = alignment.size
        self.grid_x, self.grid_y = (np.clip(g, -MAP_PAD, s - 1 + MAP_PAD).astype(np.float32) for g in (gx, gy))
        self.id_x, self.id_y = np.meshgrid(np.arange(s, dtype=np.float32), np.arange(s, dtype=np.float32))
        alpha = cv2.warpAffine(
            feather_mask(alignment.size), inv, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        self.alpha, self.beta = alpha.astype(np.float32), (1.0 - alpha).astype(np.float32)
        self.bg = np.ascontiguousarray(image[y0:y1, x0:x1])
        # Where each copy differs from the photo, grown by the band in which its map fades into the photo's
        # (``parla.face.mouth.localize``) and by the interpolation kernel's reach, in photo pixels: outside it every
        # source samples the same pixels by the same map, so a hand-over warps the second one over that part only.
        reach = MAP_BAND / np.sqrt(abs(np.linalg.det(alignment.matrix[:, :2]))) + SAMPLE_REACH
        self.changed = [None] + [changed_box(image, c, reach) for c in copies]
        # A black-and-white photo gets a grey change: the refiner (trained on colour video) would tint its mouth
        self.grey = bool(np.percentile(np.ptp(self.bg[::4, ::4].astype(np.int16), axis=2), 99) <= GREY_SPREAD)
        px = w * h
        self.interp = cv2.INTER_CUBIC if px <= CUBIC_MAX_PX or not realtime else cv2.INTER_LINEAR
        # What each frame remaps: every image itself, or (a small footprint) its upsampled neighbourhood
        self.factor, self.origin, self.sampled = 1, (0, 0), self.images
        if px <= LANCZOS_MAX_PX:
            m, f = SAMPLE_MARGIN, UPSAMPLE
            ox, oy = int(max(x0 - m, 0)), int(max(y0 - m, 0))
            self.factor, self.origin = f, (ox, oy)
            self.sampled = tuple(
                cv2.resize(im[oy : y1 + m, ox : x1 + m], None, fx=f, fy=f, interpolation=cv2.INTER_LANCZOS4)
                for im in self.images
            )

    def _crop_coords(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gy = np.meshgrid(xs.astype(np.float64), ys.astype(np.float64))
        m = self.alignment.matrix
        return (
            (m[0, 0] * gx + m[0, 1] * gy + m[0, 2]).astype(np.float32),
            (m[1, 0] * gx + m[1, 1] * gy + m[1, 2]).astype(np.float32),
        )

    def __call__(self, mx: np.ndarray, my: np.ndarray, change: np.ndarray | None) -> np.ndarray:
        """A copy of the photo with the face warped by the crop-space backward map (``mx``, ``my``: crop x, y
        sampled by each crop pixel) and ``change`` ((r, r, 3) float, grey levels, crop-aligned) added."""
        return self.sources([(0, mx, my, 1.0)], change)

    def sources(
        self, sources: list[tuple[int, np.ndarray, np.ndarray, float]], change: np.ndarray | None
    ) -> np.ndarray:
        """As ``__call__`` for one or two (image index, map x, map y, weight) warped and blended (weights sum to
        1; each later one is mixed in by its weight)."""
        out = self.image.copy()
        if self.empty:
            return out
        patch, first = None, None
        for i, mx, my, weight in sources:
            px, py = self._positions(mx, my)
            if patch is None:
                patch, first = self._remap(i, px, py), (i, px, py)
                continue
            self._mix_in(patch, first, (i, px, py), weight)
        assert patch is not None
        if change is not None:
            if self.grey:
                change = np.repeat(change.mean(axis=2, keepdims=True), 3, axis=2)
            self._add(patch, change)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.cv2.blendLinear(patch, self.bg, self.alpha, self.beta)
        return out

    def _warped(self, i: int, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
        """The footprint of image ``i`` (0: the photo, then the copies) remapped by the crop-space backward map."""
        return self._remap(i, *self._positions(mx, my))

    def _positions(self, mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The photo position each footprint pixel samples, from the crop-space backward map."""
        cv2, inv = self.cv2, self.alignment.inverse
        # the backward map (extended by the identity) in photo coordinates, looked up on the coarse grid, then
        # interpolated at every footprint pixel
        cx, cy = (
            cv2.remap(m - i, self.gx, self.gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) + g
            for m, i, g in ((mx, self.id_x, self.grid_x), (my, self.id_y, self.grid_y))
        )
        a, b, c, d, e, f = (float(v) for v in inv.ravel())  # python floats keep the arithmetic in float32
        w, h, k = self.size[0], self.size[1], MAP_STEP
        px, py = (
            cv2.resize(m, self.ext, interpolation=cv2.INTER_LINEAR)[k : k + h, k : k + w]
            for m in (a * cx + b * cy + c, d * cx + e * cy + f)
        )
        return px, py

    def _remap(self, i: int, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Image ``i`` sampled at photo positions (``px``, ``py``)."""
        f = self.factor
        if f > 1:  # in the upsampled copy: photo x -> f (x - origin) + (f - 1) / 2 (half-pixel centres)
            (ox, oy), c = self.origin, (f - 1) / 2  # python numbers keep the arithmetic in float32
            px, py = (px - ox) * f + c, (py - oy) * f + c
        return self.cv2.remap(self.sampled[i], px, py, self.interp, borderMode=self.cv2.BORDER_REPLICATE)

    def _mix_in(self, patch: np.ndarray, first: tuple, second: tuple, weight: float) -> None:
        """Blend a second source into ``patch`` (the first, warped) by ``weight``, in place: only over the footprint
        pixels where either source samples a part of the photo that the two hold differently (a hand-over between
        lip copies is the mouth's business); elsewhere both give the same pixels."""
        boxes = [self.changed[i] for i in (first[0], second[0]) if self.changed[i] is not None]
        h, w = patch.shape[:2]
        ya, yb, xa, xb = 0, h, 0, w  # the same image twice: all of it
        if boxes:
            bx0, by0 = np.min([b[:2] for b in boxes], axis=0)
            bx1, by1 = np.max([b[2:] for b in boxes], axis=0)
            # looked for on every MIX_STEP-th pixel, the box grown by what the map can move between them (the
            # rows and columns found then grown by a step): a pixel too many only blends two equal values
            k, grow = MIX_STEP, MIX_GROW * MIX_STEP
            inside = np.zeros(((h + k - 1) // k, (w + k - 1) // k), bool)
            for _, px, py in (first, second):
                sx, sy = px[::k, ::k], py[::k, ::k]
                inside |= (sx >= bx0 - grow) & (sx < bx1 + grow) & (sy >= by0 - grow) & (sy < by1 + grow)
            rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
            if not len(rows):
                return
            ya, yb = max((rows[0] - 1) * k, 0), min((rows[-1] + 2) * k, h)
            xa, xb = max((cols[0] - 1) * k, 0), min((cols[-1] + 2) * k, w)
        i, px, py = second
        warped = self._remap(i, np.ascontiguousarray(px[ya:yb, xa:xb]), np.ascontiguousarray(py[ya:yb, xa:xb]))
        patch[ya:yb, xa:xb] = self.cv2.addWeighted(patch[ya:yb, xa:xb], 1.0 - weight, warped, weight, 0.0)

    def _add(self, patch: np.ndarray, change: np.ndarray) -> None:
        """Add the refiner's change in place, over the footprint rows and columns it reaches only."""
        cv2 = self.cv2
        rows, cols = (
            np.flatnonzero((np.abs(change) > 0.25).any((1, 2))),
            np.flatnonzero((np.abs(change) > 0.25).any((0, 2))),
        )
        if not len(rows):
            return
        r = change.shape[0] / self.alignment.size  # refiner pixels per crop pixel (half-pixel centres)
        lo = np.array([cols[0] - 1, rows[0] - 1]) / r
        hi = np.array([cols[-1] + 2, rows[-1] + 2]) / r
        corners = self.alignment.to_image(np.array([lo, [lo[0], hi[1]], hi, [hi[0], lo[1]]]))
        x0, y0 = self.box[:2]
        h, w = patch.shape[:2]
        xa, ya = np.clip(np.floor(corners.min(0)).astype(int) - (x0, y0), 0, (w, h))
        xb, yb = np.clip(np.ceil(corners.max(0)).astype(int) - (x0, y0) + 1, 0, (w, h))
        if xb <= xa or yb <= ya:
            return
        lx = (self.cx[ya:yb, xa:xb] + 0.5) * r - 0.5
        ly = (self.cy[ya:yb, xa:xb] + 0.5) * r - 0.5
        add = cv2.remap(change.astype(np.float32), lx, ly, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        region = patch[ya:yb, xa:xb].astype(np.float32) + add
        patch[ya:yb, xa:xb] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
