"""Lip copies of an open-mouthed photo: the other sources the renderer warps from when the speech
brings the lips closer than the photo can be squeezed.

The spline warp squeezes a lip gap at most 2:1 (``parla.face.warp.MIN_COMPRESSION``, the guard against folds),
so a portrait whose lips are apart at rest never showed them touching, and its teeth stayed in view on every
/p b m/. No smooth map can remove a mouth's interior; a map with a seam can. Per image column across the mouth, a
piecewise-linear vertical map moves the upper lip down and the lower lip up, each carrying the inside of the mouth
next to it, and cuts the middle of the inside out at a seam (for the closed copy: all of it, the lips meet); the
skin from the lips to the nose and to below the chin stretches to make up the distance. Each copy is computed once
per portrait, per pixel (the seam stays sharp), for the aligned crop and for the photo at its own resolution;
``source_weights`` then says, per frame, which one or two sources the driving shape needs.

The mirror case: a photo whose lips are together shows no inside to warp, and stretched
closed lips only grow taller. ``LipOpener`` moves its lips apart at the line where they meet (the same per-column
map, with the skin next to the lips compressed instead of stretched) and paints the gap: the mouth's dark inside and
the upper teeth, coloured from the photo's own lips and eye whites. Three such copies, wider and wider, cover the
driving gaps a speaking mouth needs.
"""

from __future__ import annotations

import copy

import numpy as np

from parla.errors import require
from parla.face.landmarks import INNER_LIP_PAIRS, interocular
from parla.face.warp import MIN_COMPRESSION

OPEN_AT_REST = 0.05  # inner-lip gap / inter-ocular distance above which a photo gets lip copies
# The copies: the photo with its lip gap cut to these fractions (the lips slide over the teeth; 0: they meet).
# With the photo itself (1) each covers what the warp can show from it without squeezing past MIN_COMPRESSION:
# the photo f >= 0.5, the quarter copy 0.125..0.5, the closed one below. A single closed copy made every slightly
# open frame of speech look shut (eval p16: the driving lips 0.05-0.1 apart showed as closed, sync 0.43 -> 0.36).
COPY_FRACTIONS = (0.25, 0.0)
BLEND_BAND = 0.2  # around each hand-over (0.5, 0.125 of the photo's gap), +-this fraction of it is blended
SEAM = 0.4  # where the lips meet, as a fraction of the gap from the upper inner lip (the lower lip travels more)
# The inner-lip landmarks sit on the lip's wet edge or a little inside it, on the teeth: the seam joins the lips
# this fraction of each lip's thickness further out, so no tooth edge is left in the closed copy (p16: white
# specks along the seam at 0).
EDGE_MARGIN = 0.15
# Where the lips end and the mouth's inside begins, read from the pixels when the photo is given: the detector's
# inner-lip points often sit on the teeth (eval p02: dark gaps above and below the teeth stayed in the closed copy).
# A pixel is inside the mouth when it is much less red than the lips (teeth, tongue shadow, grey) or much darker.
INSIDE_REDNESS = 0.6  # a* below this fraction of the lips' median a*
INSIDE_DARKNESS = 0.6  # L below this fraction of the lips' median L
LIP_SAMPLE = 0.3  # the lip's colour is read this far from its outer line towards the detector's inner point
LIP_KEEP = 0.2  # and at least this much of the lip stays
# Closed lips meet in a darker crease: the seam is shaded by this much at its centre line, falling off over
# CREASE_WIDTH crop pixels (Gaussian sigma) and tapering to nothing at the mouth corners.
CREASE_DEPTH = 0.45
CREASE_WIDTH = 1.2
# A copy's spline is solved for its own lip points, and a thin-plate spline is global: left alone it would move
# the glasses and the collar by 2-4 crop px (eval p16, the demo) whenever a frame changes source. A copy is warped
# by its own map only where it differs from the photo, and by the photo's map from MAP_BAND crop px beyond that.
MAP_BAND = 24.0
# The opened copies of a closed-mouthed photo (``LipOpener``): their inner-lip gaps, in inter-ocular distances.
# The warp squeezes a gap at most 2:1 and a stretched closed mouth shows no inside, so each copy covers the driving
# gaps from half its own to half the next one's (the photo itself: up to 0.03).
OPEN_GAPS = (0.06, 0.14, 0.30)
OPEN_UP = 0.25  # share of the opening the upper lip travels (the jaw carries the lower lip)
OPEN_PROFILE = 0.6  # the gap across the mouth: sin(pi t) ** this, 0 at the corners
OPEN_BAND = 2.5  # the skin compressed next to a moved lip: this many times the lip's travel
CAVITY_TONE = (0.42, 0.25, 0.26)  # the inside of the mouth: the lips' RGB times this at the gap's edges
CAVITY_DEPTH = 0.55  # ... darkest by this much a little above its middle (the throat)
TONGUE_TONE = (0.62, 0.36, 0.38)  # ... and towards the lower lip the tongue, the lips' RGB times this
TEETH_SHARE = 0.42  # the upper teeth show under the upper lip over this share of the gap
TEETH_MAX_IOD = 0.11  # ... at most this tall (inter-ocular distances)
TEETH_PROFILE = 1.5  # ... across the mouth: sin(pi t) ** this (the corners stay dark)
TEETH_TONE = (0.86, 0.84, 0.80)  # the teeth: the whites of the eyes times this
TEETH_MIN_CHEEK = 0.8  # ... at least this bright against the cheeks (eyes in shadow, behind glasses or too narrow
# for their whites to show read dark: eval p03's teeth were painted (65, 52, 49), a hole, not a mouth)
GRAIN_SEED = 14  # the paint's noise: the same copy for the same photo
GREY_LIPS = 12  # grey levels between the lips' channels at or below which a photo is black and white
TEETH_SIDE = 0.6  # ... and this much of it at the mouth's corners
TEETH_PARTING = 0.18  # the line between the front teeth: this much darker
TEETH_SHADE = 0.65  # ... and this much of it right under the lip (its shadow)
STEP = 8  # localize looks for the part of the map that can differ on every STEP-th pixel

UPPER_OUTER = (48, 49, 50, 51, 52, 53, 54)
LOWER_OUTER = (48, 59, 58, 57, 56, 55, 54)
UPPER_INNER = (60, 61, 62, 63, 64)
LOWER_INNER = (60, 67, 66, 65, 64)


def gap(landmarks: np.ndarray) -> float:
    """Mean inner-lip gap in the landmarks' own units."""
    return float(np.mean([np.linalg.norm(landmarks[u] - landmarks[d]) for u, d in INNER_LIP_PAIRS]))


def needs_copies(landmarks: np.ndarray) -> bool:
    return gap(landmarks) > OPEN_AT_REST * float(interocular(landmarks))


def changed_box(image: np.ndarray, other: np.ndarray, reach: float = 0.0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the pixels where two pictures of the same size differ, grown by ``reach`` on every side
    and clipped to the picture; None where they are the same."""
    diff = (image != other).reshape(*image.shape[:2], -1).any(axis=2)
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    if not len(rows):
        return None
    h, w, r = diff.shape[0], diff.shape[1], int(np.ceil(reach))
    return (max(0, cols[0] - r), max(0, rows[0] - r), min(w, cols[-1] + 1 + r), min(h, rows[-1] + 1 + r))


def localize(
    own: np.ndarray, photo: tuple[np.ndarray, np.ndarray], box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A copy's backward map (crop px; ``own``: its spline on the evaluation grid, ``parla.face.warp.tps_grids``)
    kept where the photo's map samples inside ``box`` (where the copy differs), faded into the photo's map over
    MAP_BAND crop px around it: outside the mouth every source moves alike. Computed over the part that can differ
    only (found on every STEP-th pixel, with a STEP-wide margin)."""
    from parla.face.warp import upsample

    mx, my = photo
    size = mx.shape[0]
    x0, y0, x1, y1 = box
    # between samples a pixel's position moves about as far as the pixel (no landmark pair is squeezed past 2:1):
    # 2 STEP of margin; tests/test_mouth.py checks that the map is the photo's, exactly, beyond the band
    reach = MAP_BAND + 2 * STEP
    sx, sy = mx[::STEP, ::STEP], my[::STEP, ::STEP]
    near = (sx > x0 - reach) & (sx < x1 + reach) & (sy > y0 - reach) & (sy < y1 + reach)
    rows, cols = np.flatnonzero(near.any(1)), np.flatnonzero(near.any(0))
    if not len(rows):
        return mx, my
    r = slice(max(0, (rows[0] - 1) * STEP), min(size, (rows[-1] + 2) * STEP))
    c = slice(max(0, (cols[0] - 1) * STEP), min(size, (cols[-1] + 2) * STEP))
    ox, oy = upsample(own, size, r, c)
    px, py = mx[r, c], my[r, c]
    out = np.maximum(np.maximum(np.maximum(x0 - px, px - x1), np.maximum(y0 - py, py - y1)), 0.0)
    keep = np.clip(1.0 - out / MAP_BAND, 0.0, 1.0).astype(np.float32)
    mx, my = mx.copy(), my.copy()
    mx[r, c] += keep * (ox - px)
    my[r, c] += keep * (oy - py)
    return mx, my


def source_weights(gaps: tuple[float, ...], driving: np.ndarray) -> list[tuple[int, float]]:
    """Which sources a frame is warped from, with their blend weights (at most two, summing to 1): ``gaps`` are
    the sources' inner-lip gaps (index 0 the photo, then its lip copies, closed or opened), in the driving
    landmarks' units. The widest source that the driving gap does not squeeze past MIN_COMPRESSION is chosen,
    blended with the next narrower one around each hand-over."""
    g = gap(driving)
    order = sorted(range(len(gaps)), key=lambda i: -gaps[i])
    for wide, narrow in zip(order, order[1:], strict=False):
        hand_over = MIN_COMPRESSION * gaps[wide]  # the lowest gap the wider source shows unsqueezed
        hi, lo = hand_over * (1 + BLEND_BAND), hand_over * (1 - BLEND_BAND)
        if g >= hi:
            return [(wide, 1.0)]
        if g > lo:
            w = (hi - g) / (hi - lo)
            return [(wide, 1.0 - w), (narrow, w)]
    return [(order[-1], 1.0)]


class LipCloser:
    """The seam map of one face, from its landmarks (any pixel frame in which the face is upright): ``source_y``
    says where an output pixel samples, ``landmarks`` where the points land in the copy.

    ``fraction`` of the lip gap is kept: the upper lip moves down and the lower lip up, each carrying the inside of
    the mouth next to it (the teeth they uncover), and the middle of the inside is cut out at the seam; 0 closes
    the lips, with a crease."""

    def __init__(self, landmarks: np.ndarray, image: np.ndarray | None = None, fraction: float = 0.0) -> None:
        """``image``: the picture the landmarks are in (RGB uint8); with it, the lips' inner edges are found in
        the pixels where the detector put them on the teeth. ``keeping`` gives the same face at another fraction."""
        self.fraction = float(fraction)
        lm = landmarks.astype(np.float64)
        self.x0, self.x1 = float(lm[60, 0]), float(lm[64, 0])
        xs = np.linspace(self.x0, self.x1, 64)
        self.xs = xs
        self.y_u, self.y_l = _contour(lm, UPPER_INNER, xs), _contour(lm, LOWER_INNER, xs)
        self.y_uo, self.y_lo = _contour(lm, UPPER_OUTER, xs), _contour(lm, LOWER_OUTER, xs)
        if image is not None:
            self.y_u, self.y_l = _lip_edges(image, xs, self.y_uo, self.y_u, self.y_l, self.y_lo)
        self.y_u = self.y_u - EDGE_MARGIN * np.maximum(self.y_u - self.y_uo, 0.0)
        self.y_l = self.y_l + EDGE_MARGIN * np.maximum(self.y_lo - self.y_l, 0.0)
        g = np.maximum(self.y_l - self.y_u, 0.0)
        self.y_s = self.y_u + SEAM * g
        # the stretch ends: the nose's base above, below the chin as far again as the lower lip is above it
        self.top = float(lm[33, 1])
        self.bottom = float(lm[8, 1] + 0.5 * (lm[8, 1] - lm[57, 1]))

    def keeping(self, fraction: float) -> LipCloser:
        """The same seam map keeping another fraction of the gap (the edges are not read again)."""
        other = copy.copy(self)
        other.fraction = float(fraction)
        return other

    def _knots(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        def at(v: np.ndarray) -> np.ndarray:
            return np.interp(x, self.xs, v)

        y_u, y_l, y_s, y_uo, y_lo = at(self.y_u), at(self.y_l), at(self.y_s), at(self.y_uo), at(self.y_lo)
        d_u, d_l = (1.0 - self.fraction) * (y_s - y_u), (1.0 - self.fraction) * (y_l - y_s)
        return y_u, y_l, y_s, y_uo, y_lo, d_u, d_l

    def source_y(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """For output pixels (x, y) (same shape), the row each samples in the open image (columns unchanged)."""
        return _rows_in_box(self, x, y, self._rows)

    def _rows(self, xi: np.ndarray, yi: np.ndarray) -> np.ndarray:
        y_u, y_l, y_s, y_uo, y_lo, d_u, d_l = self._knots(xi)
        top, bottom = self.top, self.bottom
        upper = yi < y_s
        src = np.empty_like(yi)
        # above the seam: nose base fixed, skin stretched down to the upper lip, the lip itself moved down by d_u
        a = upper & (yi < y_uo + d_u)
        src[a] = top + (yi[a] - top) * (y_uo[a] - top) / np.maximum(y_uo[a] + d_u[a] - top, 1e-6)
        b = upper & ~a
        src[b] = yi[b] - d_u[b]
        # below: the lower lip moved up by d_l, the skin to below the chin stretched up
        c = ~upper & (yi < y_lo - d_l)
        src[c] = yi[c] + d_l[c]
        e = ~upper & ~c
        span = np.maximum(bottom - (y_lo[e] - d_l[e]), 1e-6)
        src[e] = bottom - (bottom - yi[e]) * (bottom - y_lo[e]) / span
        return src

    def shade(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The crease: a factor (<= 1) for output pixels (x, y) of the closed copy (1 where the lips stay apart)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if self.fraction > 0:
            return np.ones_like(y)
        t = np.clip((x - self.x0) / max(self.x1 - self.x0, 1e-6), 0.0, 1.0)
        taper = np.interp(t, np.linspace(0.0, 1.0, 65), _taper(65))
        d = y - np.interp(x, self.xs, self.y_s)
        return 1.0 - CREASE_DEPTH * taper * np.exp(-0.5 * (d / CREASE_WIDTH) ** 2)

    def landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Where each point of the open face lands in the copy (the inner lips on the lips' edges, which meet on the
        seam in the closed copy)."""
        out = landmarks.astype(np.float64).copy()
        for i, (x, y) in enumerate(out):
            if not (self.x0 < x < self.x1 and self.top < y < self.bottom):
                continue
            grid = np.linspace(self.top, self.bottom, 2049)
            src = self.source_y(np.full_like(grid, x), grid)
            # the map is monotone on each side of the seam: pick the output row whose source is this point's
            k = int(np.argmin(np.abs(src - y)))
            out[i, 1] = grid[k]
        for u, d in INNER_LIP_PAIRS:
            y_u, _, _, _, _, d_u, _ = (float(v[0]) for v in self._knots(np.array([out[u, 0]])))
            _, y_l, _, _, _, _, d_l = (float(v[0]) for v in self._knots(np.array([out[d, 0]])))
            out[u, 1], out[d, 1] = y_u + d_u, y_l - d_l
        return out


def _rows_in_box(mover, x: np.ndarray, y: np.ndarray, rows) -> np.ndarray:
    """For output pixels (x, y): ``rows(x, y)`` of those inside the mover's x0..x1 x top..bottom box, where the
    lips and the skin next to them move; every other pixel keeps its own row."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    inside = (x > mover.x0) & (x < mover.x1) & (y > mover.top) & (y < mover.bottom)
    out = y.copy()
    if inside.any():
        out[inside] = rows(x[inside], y[inside])
    return out


def _lip_edges(
    image: np.ndarray, xs: np.ndarray, y_uo: np.ndarray, y_u: np.ndarray, y_l: np.ndarray, y_lo: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The inner edges of the upper and lower lip per column: from the detector's point outwards, as long as the
    pixels are inside the mouth by the colour of that lip (sampled near its outer line, where no tooth or gap
    is; never closer to that line than LIP_KEEP of the lip), smoothed across columns."""
    cv2 = require("cv2", "core")
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    light, red = lab[..., 0], lab[..., 1] - 128.0

    def px(x: float, y: float) -> tuple[float, float]:
        xi, yi = int(np.clip(round(x), 0, w - 1)), int(np.clip(round(y), 0, h - 1))
        return float(light[yi, xi]), float(red[yi, xi])

    def edge(inner: np.ndarray, outer: np.ndarray, step: float) -> np.ndarray:
        sample, limit = outer + LIP_SAMPLE * (inner - outer), outer + LIP_KEEP * (inner - outer)
        lip_light, lip_red = np.median([px(x, y) for x, y in zip(xs, sample, strict=True)], axis=0)
        if lip_red <= 2.0:  # no red to tell this lip from teeth by (a grey photo): keep the detector's points
            return inner
        out = inner.copy()
        for k, x in enumerate(xs):
            y = np.round(inner[k])
            while (y - limit[k]) * step > 0:
                lo, r = px(x, y)
                if r >= INSIDE_REDNESS * lip_red and lo >= INSIDE_DARKNESS * lip_light:
                    break  # lip
                out[k] = y - 0.5 * step
                y -= step
        # across columns: the outermost edge within a few columns (a tooth the scan stopped short of in one column
        # would leave a bright notch), then a moving average (no step from one column to the next)
        n = 7
        pad = np.pad(out, n // 2, mode="edge")
        windows = np.stack([pad[i : i + len(out)] for i in range(n)])
        outer = windows.min(0) if step > 0 else windows.max(0)
        pad = np.pad(outer, n // 2, mode="edge")
        smooth = np.convolve(pad, np.ones(n) / n, mode="valid")
        shift = np.minimum(inner - smooth, 0.0) if step < 0 else np.maximum(inner - smooth, 0.0)
        return inner - shift * _taper(len(inner))  # none at the corners: the seam map stays continuous there

    # the upper lip's edge moves up (step +1: rows decrease), the lower lip's down
    return edge(y_u, y_uo, 1.0), edge(y_l, y_lo, -1.0)


def _taper(n: int) -> np.ndarray:
    """1 in the middle of the mouth, falling to 0 at its corners."""
    return np.sin(np.pi * np.linspace(0.0, 1.0, n)) ** 0.5


def _contour(lm: np.ndarray, idx: tuple[int, ...], xs: np.ndarray) -> np.ndarray:
    pts = lm[list(idx)]
    order = np.argsort(pts[:, 0], kind="stable")
    return np.interp(xs, pts[order, 0], pts[order, 1])


def cut_crop(crop: np.ndarray, closer: LipCloser) -> np.ndarray:
    """The aligned crop with its lip gap cut (per pixel: the seam is a hard edge, as between closed lips)."""
    return _moved_crop(crop, closer.source_y, lambda out, gx, gy: _shaded(out, closer.shade(gx, gy)))


def cut_image(image: np.ndarray, alignment, closer: LipCloser) -> np.ndarray:
    """The photo at its own resolution with its lip gap cut: the seam map (in crop coordinates) evaluated at
    every photo pixel it moves, so the compositor can remap the copy as it remaps the photo."""
    return _moved_image(image, alignment, closer, lambda patch, cx, cy: _shaded(patch, closer.shade(cx, cy)))


def _moved_crop(crop: np.ndarray, source_y, finish) -> np.ndarray:
    """The crop with each pixel taken from the row ``source_y`` gives it (bilinear), then ``finish(out, x, y)``."""
    cv2 = require("cv2", "core")
    h, w = crop.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    my = source_y(gx, gy).astype(np.float32)
    out = cv2.remap(crop, gx.astype(np.float32), my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return finish(out, gx, gy)


def _moved_image(image: np.ndarray, alignment, mover, finish) -> np.ndarray:
    """The photo with the rows ``mover`` moves (its map in crop coordinates, over its x0..x1 x top..bottom box)
    taken from where the map says, bicubically, then ``finish(patch, crop x, crop y)`` over the moved pixels."""
    cv2 = require("cv2", "core")
    corners = np.array(
        [[mover.x0, mover.top], [mover.x1, mover.top], [mover.x1, mover.bottom], [mover.x0, mover.bottom]]
    )
    box = alignment.to_image(corners)
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(box.min(0)).astype(int) - 1, 0, (w, h))
    x1, y1 = np.clip(np.ceil(box.max(0)).astype(int) + 2, 0, (w, h))
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    m = alignment.matrix
    cx, cy = m[0, 0] * gx + m[0, 1] * gy + m[0, 2], m[1, 0] * gx + m[1, 1] * gy + m[1, 2]
    sy = mover.source_y(cx, cy)
    moved = np.abs(sy - cy) > 1e-9
    if not moved.any():
        return out
    inv = alignment.inverse
    px = (inv[0, 0] * cx + inv[0, 1] * sy + inv[0, 2]).astype(np.float32)
    py = (inv[1, 0] * cx + inv[1, 1] * sy + inv[1, 2]).astype(np.float32)
    patch = finish(cv2.remap(image, px, py, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), cx, cy)
    region = out[y0:y1, x0:x1]
    region[moved] = patch[moved]
    return out


def _shaded(image: np.ndarray, factor: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor[..., None].astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
