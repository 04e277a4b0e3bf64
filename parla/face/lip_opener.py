"""The opened copy of a closed-mouthed photo (``LipOpener``): its lips moved apart at the line where they meet and
the gap painted (the mouth's dark inside in the lips' own hue, the upper teeth as light as the face allows). The
copies' shared machinery (the per-column lip edges, moving pixels, the constants) is ``parla.face.mouth``'s."""

from __future__ import annotations

import numpy as np

from parla.errors import require
from parla.face.landmarks import interocular
from parla.face.mouth import (
    CAVITY_DEPTH,
    CAVITY_TONE,
    GRAIN_SEED,
    GREY_LIPS,
    LOWER_INNER,
    LOWER_OUTER,
    OPEN_BAND,
    OPEN_PROFILE,
    OPEN_UP,
    TEETH_MAX_IOD,
    TEETH_MIN_CHEEK,
    TEETH_PARTING,
    TEETH_PROFILE,
    TEETH_SHADE,
    TEETH_SHARE,
    TEETH_SIDE,
    TEETH_TONE,
    TONGUE_TONE,
    UPPER_INNER,
    UPPER_OUTER,
    _contour,
    _moved_crop,
    _moved_image,
    _rows_in_box,
)


class LipOpener:
    """The opening map of a closed-mouthed face, from its landmarks: the copy the renderer warps from when the
    speech parts lips that the photo shows together.

    No warp of a closed mouth shows an inside: stretched, the lips only grow taller (eval p09, a closed smile: the
    rendered gap was 0.11 of the driven one; p16, lips apart in the photo: 0.95). Per image column across the mouth
    the lips are moved apart at the line where they meet, the upper one by ``OPEN_UP`` of the gap, each carrying
    its own pixels; the skin next to them is compressed over a short band (the chin and the nose stay), and the
    gap is painted: the mouth's dark inside, in the lips' own hue, with the upper teeth under the upper lip in
    the colour of the whites of the eyes. The gap is widest in the middle of the mouth and closes at its corners.
    """

    def __init__(self, landmarks: np.ndarray, image: np.ndarray, gap_px: float) -> None:
        lm = landmarks.astype(np.float64)
        self.x0, self.x1 = float(lm[60, 0]), float(lm[64, 0])
        self.xs = np.linspace(self.x0, self.x1, 64)
        y_u, y_l = _contour(lm, UPPER_INNER, self.xs), _contour(lm, LOWER_INNER, self.xs)
        self.y_m = 0.5 * (y_u + y_l)  # where the lips meet
        self.y_uo, self.y_lo = _contour(lm, UPPER_OUTER, self.xs), _contour(lm, LOWER_OUTER, self.xs)
        t = np.linspace(0.0, 1.0, len(self.xs))
        g = float(gap_px) * np.sin(np.pi * t) ** OPEN_PROFILE
        self.d_u, self.d_l = OPEN_UP * g, (1.0 - OPEN_UP) * g
        peak = float(gap_px)
        # the bands of compressed skin: above the upper lip (not past the nose's base) and below the lower one
        self.top_band = np.maximum(self.y_uo - max(OPEN_BAND * OPEN_UP * peak, 1.0), float(lm[33, 1]))
        self.bottom_band = self.y_lo + max(OPEN_BAND * (1.0 - OPEN_UP) * peak, 1.0)
        self.top, self.bottom = float(self.top_band.min()), float(self.bottom_band.max())
        self.iod = float(interocular(lm))
        self.lips = lm[48:60].copy()
        # the teeth's lower edge is a smooth curve (the upper lip's edge is not: the cupid's bow): a parabola
        # fitted to the lip's edge over the middle of the mouth
        mid = (t > 0.15) & (t < 0.85)
        self.teeth_top = np.polyval(np.polyfit(self.xs[mid], (self.y_m - self.d_u)[mid], 2), self.xs)
        self.cavity, self.tongue, self.teeth = _mouth_colours(image, lm)

    def _at(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(
            np.interp(x, self.xs, v)
            for v in (self.y_m, self.y_uo, self.y_lo, self.d_u, self.d_l, self.top_band, self.bottom_band)
        )

    def source_y(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """For output pixels (x, y) (same shape), the row each samples in the photo (columns unchanged); inside
        the gap, the lip edge next to it (painted over by ``paint``)."""
        return _rows_in_box(self, x, y, self._rows)

    def _rows(self, xi: np.ndarray, yi: np.ndarray) -> np.ndarray:
        y_m, y_uo, y_lo, d_u, d_l, top, bottom = self._at(xi)
        src = yi.copy()
        a = (yi > top) & (yi < y_uo - d_u)  # skin above: compressed into the band
        src[a] = top[a] + (yi[a] - top[a]) * (y_uo[a] - top[a]) / np.maximum(y_uo[a] - d_u[a] - top[a], 1e-6)
        b = (yi >= y_uo - d_u) & (yi < y_m)  # the upper lip, moved up; in the gap: its edge
        src[b] = np.minimum(yi[b] + d_u[b], y_m[b] - 0.25)
        c = (yi >= y_m) & (yi < y_lo + d_l)  # the lower lip, moved down
        src[c] = np.maximum(yi[c] - d_l[c], y_m[c] + 0.25)
        e = (yi >= y_lo + d_l) & (yi < bottom)  # skin below
        src[e] = bottom[e] - (bottom[e] - yi[e]) * (bottom[e] - y_lo[e]) / np.maximum(
            bottom[e] - y_lo[e] - d_l[e], 1e-6
        )
        return src

    def paint(self, rgb: np.ndarray, x: np.ndarray, y: np.ndarray, px: float = 1.0, grain: float = 0.0) -> np.ndarray:
        """The gap painted over output pixels (x, y) of ``rgb`` (float32, same shape + 3), each ``px`` crop
        pixels tall: the share of a pixel inside the gap takes the inside's colour, the teeth's under the lip,
        with ``grain`` grey levels of noise (the photo's own, so the paint is not smoother than the picture)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        cols = (x > self.x0) & (x < self.x1)
        if not cols.any():
            return rgb
        xi, yi = x[cols], y[cols]
        y_m, _, _, d_u, d_l, _, _ = self._at(xi)
        a, b = y_m - d_u, y_m + d_l
        g = b - a
        lo, hi = yi - 0.5 * px, yi + 0.5 * px
        cover = np.clip((np.minimum(hi, b) - np.maximum(lo, a)) / px, 0.0, 1.0)
        # depth: darkest in the middle of the gap
        s = np.clip((yi - a) / np.maximum(g, 1e-6), 0.0, 1.0)
        depth = 1.0 - CAVITY_DEPTH * np.exp(-(((s - 0.45) / 0.25) ** 2))
        colour = depth[:, None] * self.cavity[None, :]
        tongue = np.clip((s - 0.6) / 0.4, 0.0, 1.0)[:, None]
        colour = colour + tongue * (self.tongue[None, :] - colour)
        # the upper teeth: below the upper lip, TEETH_SHARE of the gap (at most TEETH_MAX_IOD), lit from the front
        # and shaded under the lip, none near the corners
        t = np.clip((xi - self.x0) / max(self.x1 - self.x0, 1e-6), 0.0, 1.0)
        h = np.minimum(TEETH_SHARE * g, TEETH_MAX_IOD * self.iod) * np.sin(np.pi * t) ** TEETH_PROFILE
        edge = np.minimum(np.interp(xi, self.xs, self.teeth_top) + h, b)
        tooth_cover = np.clip((np.minimum(hi, edge) - np.maximum(lo, a)) / px, 0.0, 1.0)
        shade = TEETH_SHADE + (1.0 - TEETH_SHADE) * np.clip((yi - a) / np.maximum(0.5 * h, 1e-6), 0.0, 1.0)
        # the teeth recede into the mouth's shadow towards its corners; the two front ones part in the middle
        shade = shade * (TEETH_SIDE + (1.0 - TEETH_SIDE) * np.sin(np.pi * t) ** 0.5)
        gap_line = np.exp(-0.5 * ((xi - 0.5 * (self.x0 + self.x1)) / max(0.6 * px, 0.5)) ** 2)
        shade = shade * (1.0 - TEETH_PARTING * gap_line)
        tooth = shade[:, None] * self.teeth[None, :]
        inside = np.where(cover > 0, tooth_cover / np.maximum(cover, 1e-6), 0.0)
        colour = colour + np.clip(inside, 0.0, 1.0)[:, None] * (tooth - colour)
        if grain > 0:  # the same noise for the same pixel whenever the copy is made
            colour = colour + grain * np.random.default_rng(GRAIN_SEED).standard_normal(len(colour))[:, None]
        out = rgb.copy()
        sub = out[cols]
        out[cols] = sub + cover[:, None] * (colour - sub)
        return out

    def landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Where each point of the closed face lands in the copy (the inner lips on the edges of the gap)."""
        out = landmarks.astype(np.float64).copy()
        upper_inner, lower_inner = {61, 62, 63}, {65, 66, 67}
        for i, (x, y) in enumerate(landmarks.astype(np.float64)):
            if not (self.x0 < x < self.x1 and self.top < y < self.bottom):
                continue
            y_m, y_uo, y_lo, d_u, d_l, top, bottom = (float(v[0]) for v in self._at(np.array([x])))
            if i in upper_inner or (i not in lower_inner and y < y_m):
                if i in upper_inner or y >= y_uo:
                    out[i, 1] = min(y, y_m) - d_u
                elif y > top:
                    out[i, 1] = top + (y - top) * (y_uo - d_u - top) / max(y_uo - top, 1e-6)
            else:
                if i in lower_inner or y <= y_lo:
                    out[i, 1] = max(y, y_m) + d_l
                elif y < bottom:
                    out[i, 1] = bottom - (bottom - y) * (bottom - y_lo - d_l) / max(bottom - y_lo, 1e-6)
        return out


EYES = (tuple(range(36, 42)), tuple(range(42, 48)))  # landmark polygons: the two eyes
CHEEKS = ((2, 3, 4, 48, 31, 29), (14, 13, 12, 54, 35, 29))  # ... between jaw line, mouth corner and nose, each side


def region_mask(shape: tuple[int, ...], lm: np.ndarray, polygons) -> np.ndarray:
    """(H, W) uint8, 1 inside any of the landmark ``polygons`` (tuples of landmark indices)."""
    cv2 = require("cv2", "core")
    mask = np.zeros(shape[:2], np.uint8)
    for idx in polygons:
        cv2.fillPoly(mask, [np.round(lm[list(idx)]).astype(np.int32)], 1)
    return mask


def _mouth_colours(image: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside, tongue, teeth) RGB float32 colours for a face: the inside and the tongue are the lips' colour
    darkened (CAVITY_TONE, TONGUE_TONE); the
    teeth are the brightest pixels of the eyes (the whites), a little shaded, or a light grey of the skin's
    brightness where the eyes give none."""
    cv2 = require("cv2", "core")
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(lm[48:60]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(lm[60:68]).astype(np.int32)], 0)
    lips = image[mask > 0].astype(np.float32)
    lip = np.median(lips, axis=0) if len(lips) else np.array([150.0, 90.0, 90.0], np.float32)
    inside, tongue = lip * np.array(CAVITY_TONE, np.float32), lip * np.array(TONGUE_TONE, np.float32)
    px = image[region_mask(image.shape, lm, EYES) > 0].astype(np.float32)
    if len(px) >= 8:
        light = px.mean(1)
        white = px[light >= np.percentile(light, 80)].mean(0)
    else:
        skin = image[int(lm[29, 1]), int(lm[29, 0])].astype(np.float32)
        white = np.full(3, 0.9 * float(skin.mean()), np.float32)
    teeth = np.clip(white * TEETH_TONE, 0.0, 255.0)
    skin = image[region_mask(image.shape, lm, CHEEKS) > 0].astype(np.float32)
    floor = TEETH_MIN_CHEEK * float(np.median(skin.mean(1))) if len(skin) else 0.0
    level = float(teeth.mean())
    if level < floor:  # too dark to be teeth: brought up to the floor, half their tint kept
        teeth = floor * (0.5 + 0.5 * teeth / max(level, 1.0))
    colours = [inside, tongue, teeth]
    if len(lips) and np.percentile(np.ptp(lips, axis=1), 90) <= GREY_LIPS:  # a black-and-white photo: grey paint
        colours = [np.full(3, c.mean()) for c in colours]
    inside, tongue, teeth = (c.astype(np.float32) for c in colours)
    return inside, tongue, teeth


def lip_grain(image: np.ndarray, lips: np.ndarray) -> float:
    """The picture's fine noise on the lips (``lips``: the 12 outer-lip points in its pixels), in grey levels: the
    robust spread of what a 1-px blur takes out of it there."""
    cv2 = require("cv2", "core")
    x0, y0 = np.maximum(np.floor(lips.min(0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(lips.max(0)).astype(int) + 3
    patch = image[y0:y1, x0:x1].astype(np.float32)
    if patch.shape[0] < 4 or patch.shape[1] < 4:
        return 0.0
    grey = patch.mean(2)
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(lips - (x0, y0)).astype(np.int32)], 1)
    hp = (grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[mask > 0]
    if len(hp) < 16:
        return 0.0
    return float(1.4826 * np.median(np.abs(hp - np.median(hp))))


def open_crop(crop: np.ndarray, opener: LipOpener) -> np.ndarray:
    """The aligned crop with its lips moved apart and the gap painted."""
    grain = lip_grain(crop, opener.lips)
    return _moved_crop(
        crop, opener.source_y, lambda out, gx, gy: _to_uint8(opener.paint(out.astype(np.float32), gx, gy, grain=grain))
    )


def open_image(image: np.ndarray, alignment, opener: LipOpener) -> np.ndarray:
    """The photo at its own resolution opened as ``open_crop`` opens the crop (the map and the paint evaluated in
    crop coordinates at every photo pixel they touch)."""
    grain, px = lip_grain(image, alignment.to_image(opener.lips)), float(np.hypot(*alignment.matrix[:, 0]))

    def finish(patch: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        return _to_uint8(opener.paint(patch.astype(np.float32), cx, cy, px=px, grain=grain))

    return _moved_image(image, alignment, opener, finish)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
