"""An invisible, tiled spread-spectrum watermark in every generated frame, turning smoothly in time.

Embedding: a 192-px tile of 16 x 16 smooth bumps (12-px cells, each a raised cosine of sign +-1, large enough
that H.264 at CRF 28 after halving the size keeps them) is added to R, G and B alike (i.e. to the luma), tiled
over the whole frame, at a peak of 4 grey levels (PSNR about 42 dB). 96 cells form a fixed sync pattern; 160 carry
40 bits (a 24-bit payload + CRC-16), each bit on 4 cells with pseudo-random signs.

Motion: frame t carries cos(a) P + sin(a) P', a = 2 pi t / PERIOD, where P is the tile and P' the same tile moved by
half a tile along both axes. The mark's energy is the same in every frame (a still frame always carries all of
it), and it changes by a small step between consecutive frames (no visible pulse: a mark that flipped its sign
every 8 frames changed the picture by 3.3 grey levels at once, a pulse three times a second).

Detection: high-pass the luma and weight it by its inverse local variance (the matched filter for a mark in
picture "noise" of varying strength) and fold it into one tile (the sum over all tile positions). A video's folds
are demodulated at the turn (``Demodulator``: per pixel, the least-squares fit of a + b cos(wt) + c sin(wt) over
the frames read): the picture's still part goes to a, the mark adds up coherently in b and c, at the period as
written and after the common frame-rate conversions. An image (or a single frame) is folded directly. Each fold
is correlated with the sync pattern at every shift (FFT), in units of its own spread; P and P' put their peaks
half a tile apart, so the statistic at a shift adds the squared correlations there and half a tile away (the
mark's whole energy at any turn), and is read against the same statistic at every other shift, as a chi-square
with two degrees of freedom per independent fold (``effective_count``). The mark is found only when that z is over
the calibrated threshold *and* the payload passes its CRC-16. Resizing is handled by folding at several scales,
cropping by the shift search.

The scale is read from the picture before any folding: the mark repeats every TILE px, so the autocorrelation of
the first frame's high-passed luma peaks at the tile's period however the video was resized (192 px as written,
173 after a 0.9x screen capture, 48 at a quarter); real videos show no such lattice. The fold runs at 1 (as
written) and at the scales of the strongest lattice candidates. A fixed list of scales missed every resize not on
it (a 0.9x screen capture: 0 of 6 clips found).

Calibration (``NULL_GUMBEL`` and below): the statistic's distribution on real videos and photos, measured, gives
each reading a probability that the mark is present and the threshold a false positive rate
(docs/responsible-use.md).
"""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass, field

import numpy as np

from parla.errors import require

TILE = 192  # px at the written frame's resolution
CELL = 12  # px per bump
GRID = TILE // CELL  # 16 x 16 cells
KEY = 0x9A4C1A  # seed of the layout (public: a provenance mark, not a secret)
N_SYNC = 96
N_PAYLOAD = 24
N_CRC = 16
N_BITS = N_PAYLOAD + N_CRC
AMPLITUDE = 4.0  # grey levels at a bump's peak: PSNR 42.4 dB before clipping
# Frames under 512 px carry fewer tiles, and after halving and CRF 28 the mark fades first there: a stronger
# peak (PSNR 40.5 dB, still above the 40 dB bar) buys back detection margin.
AMPLITUDE_SMALL, SMALL_SIDE = 5.0, 512
PERIOD = 32  # frames per full turn of the mark (1.28 s at 25 fps): a step of 2 pi / 32 changes it by ~0.3 grey
LAG = PERIOD // 2  # frames half a turn apart carry opposite marks
# Turn periods the detector demodulates at, in frames as read: as written, and after the common frame-rate
# conversions of a 25-fps video (to 30, from 30, to 15 and to 50 fps)
PERIODS = (float(PERIOD), PERIOD * 25 / 30, PERIOD * 30 / 25, PERIOD * 15 / 25, PERIOD * 50 / 25)
HALF = TILE // 2  # px: P' is P moved by this much along both axes
SCALES = (1.0, 2.0, 1.5, 4 / 3, 0.75)  # fixed detector scales (resize by this), for small frames
# The lattice search (``lattice_scales``): tile periods from LATTICE_MIN_PERIOD px (a copy shrunk to 1/4.8) to
# LATTICE_MAX_PERIOD (enlarged 3x) or as far as LATTICE_MIN_OVERLAP px of the frame still overlap it shifted by the
# period (a 230-px screen capture of a 256² clip: period 173); the LATTICE_CANDIDATES strongest are folded unless
# the resized frame would exceed FOLD_MAX_PIXELS (a quarter-size copy of a 1080p video is 480x270; a candidate that
# would blow a 1080p frame up fourfold is not one).
LATTICE_MIN_PERIOD = 40
LATTICE_MAX_PERIOD = 600
LATTICE_MIN_OVERLAP = 32
LATTICE_CANDIDATES = 2
FOLD_MAX_PIXELS = 4_200_000
# Frames up to SMALL_FRAME px are also folded at the fixed SCALES (cheap there; a half-size copy of a 256² clip is
# 128² with a 96-px period, too little picture for the lattice to show), up to TINY_FRAME px at 4x too (a
# quarter-size copy of a clip up to 1200²: a 979² portrait quartered is 245², where the lattice read 1.5, not 4).
SMALL_FRAME = 400_000
TINY_FRAME = 90_000
# A video without a mark is let go early: after HOPELESS_AFTER frames, when even HOPELESS_MARGIN times the
# cube-root growth of its statistic could not reach PSR_THRESHOLD by the last frame (the statistic of a mark grows
# with the frames read, that of a real video does not).
HOPELESS_AFTER = 32
HOPELESS_MARGIN = 1.5
# Chase decoding (``decode_soft``) where the sync is over the threshold: the 8 least certain bits, up to two flipped
# (36 trials), a word accepted only with a valid CRC-16 and a known generator id (the top 4 of the 24 bits): a wrong
# word passes with probability about 36 / 65,536 / 16 = 3e-5 per decided sync.
CHASE_BITS = 8
GENERATOR_ID = 0x5  # "Parla"
KNOWN_GENERATORS = (GENERATOR_ID,)


@dataclass(frozen=True)
class Layout:
    sync: np.ndarray  # (N_SYNC,) cell indices
    sync_sign: np.ndarray  # (N_SYNC,) +-1
    data: np.ndarray  # (N_BITS, 4) cell indices per bit
    data_sign: np.ndarray  # (N_BITS, 4) +-1
    bump: np.ndarray = field(repr=False)  # (CELL, CELL) raised cosine


def layout() -> Layout:
    rng = np.random.default_rng(KEY)
    cells = rng.permutation(GRID * GRID)
    per_bit = (GRID * GRID - N_SYNC) // N_BITS
    t = (np.arange(CELL) + 0.5) / CELL
    w = np.sin(np.pi * t)
    return Layout(
        cells[:N_SYNC],
        rng.choice([-1.0, 1.0], N_SYNC),
        cells[N_SYNC : N_SYNC + N_BITS * per_bit].reshape(per_bit, N_BITS).T,
        rng.choice([-1.0, 1.0], (N_BITS, per_bit)),
        np.outer(w, w),
    )


LAYOUT = layout()


def _cells_to_tile(values: np.ndarray) -> np.ndarray:
    """(GRID*GRID,) cell values -> (TILE, TILE) smooth pattern."""
    return np.kron(values.reshape(GRID, GRID), LAYOUT.bump)


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, as in SMBus)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)  # CRC-16/CCITT


def payload_bits(payload: int) -> np.ndarray:
    """24-bit payload -> 40 bits (+-1) with its CRC-16."""
    if not 0 <= payload < 1 << N_PAYLOAD:
        raise ValueError(f"payload must fit in {N_PAYLOAD} bits")
    word = (int(payload) << N_CRC) | crc16(int(payload).to_bytes(3, "big"))
    return np.array([1.0 if (word >> (N_BITS - 1 - i)) & 1 else -1.0 for i in range(N_BITS)])


def bits_payload(bits: np.ndarray) -> int | None:
    """Decoded bits -> the payload, or None when the CRC does not match."""
    word = 0
    for b in bits:
        word = (word << 1) | int(b > 0)
    payload, crc = word >> N_CRC, word & ((1 << N_CRC) - 1)
    return payload if crc16(payload.to_bytes(3, "big")) == crc else None


def pattern(payload: int) -> np.ndarray:
    """The (TILE, TILE) float32 tile of a payload, peak 1."""
    v = np.zeros(GRID * GRID)
    v[LAYOUT.sync] = LAYOUT.sync_sign
    v[LAYOUT.data] = LAYOUT.data_sign * payload_bits(payload)[:, None]
    return _cells_to_tile(v).astype(np.float32)


def sync_template() -> np.ndarray:
    v = np.zeros(GRID * GRID)
    v[LAYOUT.sync] = LAYOUT.sync_sign
    return _cells_to_tile(v)


class Embedder:
    """Adds the payload's turning tiled pattern to RGB uint8 frames. Each of the PERIOD phases is cached as two
    uint8 tiles (the positive and negative parts of the rounded mark), added tile by tile with OpenCV's saturating
    add/subtract: as cheap as a whole cached frame (1.25 ms for 1920x1080, benchmarks/watermark_cost.py), without a
    frame-sized cache per phase."""

    def __init__(self, payload: int, amplitude: float | None = None) -> None:
        self.payload, self.amplitude = payload, amplitude
        self.unit = pattern(payload)
        self.moved = np.roll(self.unit, (HALF, HALF), axis=(0, 1))
        self._tiles: dict[tuple[float, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def amplitude_for(self, h: int, w: int) -> float:
        if self.amplitude is not None:
            return self.amplitude
        return AMPLITUDE if min(h, w) >= SMALL_SIDE else AMPLITUDE_SMALL

    def tile(self, index: int, amplitude: float) -> np.ndarray:
        """The (TILE, TILE) float mark of frame ``index`` (before rounding)."""
        a = phase(index)
        return amplitude * (np.cos(a) * self.unit + np.sin(a) * self.moved)

    def field_for(self, h: int, w: int, index: int = 0) -> np.ndarray:
        """The (h, w, 1) float field of frame ``index``."""
        reps = (-(-h // TILE), -(-w // TILE))
        return np.tile(self.tile(index, self.amplitude_for(h, w)), reps)[:h, :w, None]

    def _parts(self, index: int, amplitude: float, channels: int) -> tuple[np.ndarray, np.ndarray]:
        key = (amplitude, index % PERIOD, channels)
        if key not in self._tiles:
            f = np.round(self.tile(index, amplitude))[..., None]
            pos = np.repeat(np.clip(f, 0, 255), channels, axis=2).astype(np.uint8)
            neg = np.repeat(np.clip(-f, 0, 255), channels, axis=2).astype(np.uint8)
            self._tiles[key] = (pos, neg)
        return self._tiles[key]

    def __call__(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        cv2 = require("cv2", "core")
        out = np.array(frame, dtype=np.uint8, order="C", copy=True)
        if out.ndim == 2:
            out = out[..., None]
        h, w, c = out.shape
        pos, neg = self._parts(index, self.amplitude_for(h, w), c)
        for y in range(0, h, TILE):
            for x in range(0, w, TILE):
                roi = out[y : y + TILE, x : x + TILE]
                th, tw = roi.shape[:2]
                cv2.add(roi, pos[:th, :tw], dst=roi)
                cv2.subtract(roi, neg[:th, :tw], dst=roi)
        return out if frame.ndim == 3 else out[..., 0]


def phase(index: int) -> float:
    """The mark's turn in frame ``index``: 2 pi per PERIOD frames."""
    return 2 * np.pi * (index % PERIOD) / PERIOD


def highpass_luma(frame: np.ndarray) -> np.ndarray:
    """Luma minus its local mean, divided by its local variance: the matched-filter weighting for a constant-
    amplitude mark in picture "noise" whose strength varies across the frame (flat areas count most)."""
    cv2 = require("cv2", "core")
    y = _luma(frame)
    hp = y - cv2.GaussianBlur(y, (0, 0), CELL / 4)
    return hp / (cv2.GaussianBlur(hp * hp, (0, 0), CELL) + 1.0)


def fold(hp: np.ndarray) -> np.ndarray:
    """Sum of all TILE x TILE blocks of a high-passed image (zero-padded at the ends)."""
    h, w = hp.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    pad = np.zeros((ph, pw), np.float32)
    pad[:h, :w] = hp
    return pad.reshape(ph // TILE, TILE, pw // TILE, TILE).sum((0, 2))


def lattice_scales(luma: np.ndarray, n: int = LATTICE_CANDIDATES) -> list[float]:
    """Detector scales (TILE / period) of the ``n`` strongest tile-lattice candidates in one frame's luma: peaks
    of its high-passed autocorrelation along both axes, above the local median of that profile."""
    cv2 = require("cv2", "core")
    hp = highpass_luma(luma).astype(np.float32)
    h, w = hp.shape
    top = min(min(h, w) - LATTICE_MIN_OVERLAP, LATTICE_MAX_PERIOD)
    lags = np.arange(LATTICE_MIN_PERIOD, top + 1)
    if len(lags) < 3:
        return []
    # zero-padded, so the autocorrelation is not circular; divided by the overlap at each lag
    padded = np.zeros((cv2.getOptimalDFTSize(h + top), cv2.getOptimalDFTSize(w + top)), np.float32)
    padded[:h, :w] = hp
    spec = cv2.dft(padded, flags=cv2.DFT_COMPLEX_OUTPUT)
    power = spec[..., 0] ** 2 + spec[..., 1] ** 2
    ac = cv2.idft(np.stack([power, np.zeros_like(power)], -1), flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
    prof = (ac[0, lags] / (w - lags) * w + ac[lags, 0] / (h - lags) * h) / max(float(ac[0, 0]), 1e-12)
    k = 12  # the median over +-k lags is the picture's own slowly falling correlation
    pad = np.pad(prof, k, mode="edge")
    base = np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * k + 1), axis=1)
    score = prof - base
    out: list[float] = []
    for i in np.argsort(score)[::-1]:
        if len(out) == n:
            break
        # a multiple of the period peaks too (the lattice repeats): step down to the fundamental when a peak
        # at a half or a third of this lag is at least half as strong
        for d in (3, 2):
            j = int(round((lags[i]) / d)) - LATTICE_MIN_PERIOD
            if j >= 1 and j + 1 < len(lags):
                j = j - 1 + int(np.argmax(score[j - 1 : j + 2]))
                if score[j] >= 0.5 * score[i]:
                    i = j
                    break
        period = float(lags[i])
        if 0 < i < len(lags) - 1:  # the peak's position to a fraction of a pixel (a parabola through 3 lags)
            a, b, c = score[i - 1], score[i], score[i + 1]
            if a - 2 * b + c < 0:
                period += float(np.clip(0.5 * (a - c) / (a - 2 * b + c), -0.5, 0.5))
        scale = TILE / period
        if all(abs(scale / o - 1) > 0.03 for o in out):
            out.append(scale)
    return out


class Demodulator:
    """Running least-squares fit of every pixel of a fold's time series to a + b cos(wt) + c sin(wt), for each
    candidate turn period: b and c hold the turning mark (the picture's still part goes to a). Sums only: the
    same numbers at any frame count, in memory that does not grow with the video."""

    def __init__(self) -> None:
        self.sums = {p: np.zeros((3, TILE, TILE)) for p in PERIODS}
        self.gram = {p: np.zeros((3, 3)) for p in PERIODS}
        self.frames = 0

    def add(self, fold_: np.ndarray) -> None:
        t = self.frames
        for p in PERIODS:
            v = np.array([1.0, np.cos(2 * np.pi * t / p), np.sin(2 * np.pi * t / p)])
            self.sums[p] += v[:, None, None] * fold_[None]
            self.gram[p] += np.outer(v, v)
        self.frames += 1

    def folds(self, period: float) -> list[np.ndarray] | None:
        """The (b, c) folds for one period, or None before a quarter turn (the fit is not determined)."""
        if self.frames < max(4, period / 4):
            return None
        coef = np.tensordot(np.linalg.pinv(self.gram[period]), self.sums[period], axes=1)
        return [coef[1], coef[2]]


class Accumulator:
    """Gathers frames at every candidate scale. Two statistics: the static fold of single frames (an image, or
    a frame grabbed from a video) and, for a video, every frame's fold demodulated at the mark's turn (``Demodulator``:
    the picture's still part cancels, the turning mark adds up coherently). ``result()`` decodes the strongest.

    ``scales``: None reads them from the first frame (1, the written size, and the tile-lattice candidates,
    ``lattice_scales``); a tuple fixes them."""

    def __init__(self, scales: tuple[float, ...] | None = None) -> None:
        self.scales: tuple[float, ...] = ()
        self.static: dict[float, list[np.ndarray]] = {}  # per-frame folds (turn unknown)
        self.demod: dict[float, Demodulator] = {}
        if scales is not None:
            self._use(scales)
        self.frames = 0
        self.diff_z = self.static_z = 0.0  # the strongest sync of the video and image statistics at the last result()

    def _use(self, scales: tuple[float, ...]) -> None:
        self.scales = scales
        self.static = {s: [] for s in scales}
        self.demod = {s: Demodulator() for s in scales}

    def add(self, frame: np.ndarray) -> None:
        # Luma first: it is linear, like the resizes, so folding the luma of the resized frame and resizing the
        # luma give the same numbers, at a third of the resizing work.
        f = _luma(frame)
        if not self.scales:
            h, w = f.shape
            fixed = (*SCALES, 4.0) if h * w <= TINY_FRAME else SCALES if h * w <= SMALL_FRAME else (1.0,)
            found = [s for s in lattice_scales(f) if s * s * h * w <= FOLD_MAX_PIXELS]
            self._use((*fixed, *(s for s in found if all(abs(s / o - 1) > 0.03 for o in fixed))))
        for s, folded in zip(self.scales, _fold_all(f, self.scales), strict=True):
            if self.frames < 4:  # a few single frames are enough for the static statistic
                self.static[s].append(folded)
            self.demod[s].add(folded)
        self.frames += 1

    def result(self) -> Detection:
        best = Detection(False, None, 0.0, 0.0, 1.0, (0, 0))
        self.diff_z = self.static_z = 0.0
        for s in self.scales:
            readings = [(self.demod[s].folds(p), "video") for p in PERIODS] + [(self.static[s], "image")]
            for folds, kind in readings:
                if folds:
                    d = decode_folds(folds, s, kind)
                    if kind == "video":
                        self.diff_z = max(self.diff_z, d.psr)
                    else:
                        self.static_z = max(self.static_z, d.psr)
                    if (d.found, d.confidence, d.psr) > (best.found, best.confidence, best.psr):
                        best = d
        return best

    def hopeless(self, max_frames: int) -> bool:
        """After ``result()``: no mark can reach the threshold by ``max_frames``. A demodulated mark's energy over
        the noise grows with the frames read, its z (a cube root of that ratio, Wilson-Hilferty) like their cube
        root; given HOPELESS_MARGIN times that growth, it would still fall short."""
        if self.frames < HOPELESS_AFTER or self.frames >= max_frames:
            return False
        grown = self.diff_z * (max_frames / self.frames) ** (1 / 3) * HOPELESS_MARGIN
        return bool(grown < PSR_THRESHOLD)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ LUMA if frame.ndim == 3 else frame.astype(np.float32)


_POOL = None


def _fold_all(f: np.ndarray, scales: tuple[float, ...]) -> list[np.ndarray]:
    """``_fold_at`` for every scale, two at a time (OpenCV and numpy release the GIL on whole images)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max(1, min(len(scales), os.cpu_count() or 1, 4)), thread_name_prefix="parla-wm")
    return list(_POOL.map(lambda s: _fold_at(f, s), scales))


def _fold_at(f: np.ndarray, scale: float) -> np.ndarray:
    cv2 = require("cv2", "core")
    g = f if scale == 1.0 else cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return fold(highpass_luma(g)) if min(g.shape[:2]) >= CELL * 4 else np.zeros((TILE, TILE), np.float32)


def decode_folds(folds: list[np.ndarray], scale: float, kind: str = "video") -> Detection:
    """Folds of unknown turn each. Each fold holds the tile at a shift and, turned against it, at that shift plus
    half a tile; the statistic at a shift is the summed squared sync correlation there and half a tile away, E. Its
    significance is E against the same statistic at every other shift (chi-square with two degrees of freedom per
    independent fold, turned into a Gaussian z by the Wilson-Hilferty transform, so one threshold fits 1 or 64
    folds). The bits are read at that shift from both copies of every fold (``read_folds``)."""
    tmpl = np.conj(np.fft.fft2(sync_template()))
    corrs = [np.real(np.fft.ifft2(np.fft.fft2(a) * tmpl)) for a in folds]
    # each fold's correlation in units of its own spread over all shifts: a fold with much picture in it (motion,
    # texture) would otherwise dominate the sum with picture, not mark; whitened, the folds count by their
    # evidence, and without a mark the sum is near the chi-square it is taken for
    scales = [1 / max(float(np.sqrt(np.mean(c * c))), 1e-12) for c in corrs]
    corrs = [c * k for c, k in zip(corrs, scales, strict=True)]
    folds = [a * k for a, k in zip(folds, scales, strict=True)]
    energy = sum(c * c for c in corrs)
    energy = energy + np.roll(energy, (HALF, HALF), axis=(0, 1))
    if not energy.any():  # nothing folded at this scale (the frame is smaller than a few cells there)
        return Detection(False, None, 0.0, 0.0, scale, (0, 0), 0.0, kind, 0.0)
    dy, dx = np.unravel_index(int(np.argmax(energy)), energy.shape)
    n = 2 * effective_count(corrs)
    off = energy[_off_peak(dy, dx) & _off_peak((dy + HALF) % TILE, (dx + HALF) % TILE)]
    x = energy[dy, dx] / max(off.mean(), 1e-12)  # E / (n sigma^2): mean 1 under no mark
    z = (x ** (1 / 3) - (1 - 2 / (9 * n))) / np.sqrt(2 / (9 * n))
    over = bool(z >= threshold(kind))
    payload, margin = read_folds(folds, int(dy), int(dx), chase=over)
    found = over and payload is not None
    confidence = probability_marked(float(z), kind, found)
    return Detection(
        found, payload if found else None, float(z), float(z), scale, (int(dy), int(dx)), margin, kind, confidence
    )


def effective_count(corrs: list[np.ndarray]) -> float:
    """How many independent folds the (whitened) correlation maps are worth: n^2 / sum of their squared pairwise
    correlations over all shifts (the participation ratio). Differences of frames half a second apart repeat much
    of one another's picture; counted as independent, 64 of them made a real video read z 11-16. A map without
    any picture (a frame too small to fold at a scale) counts for nothing."""
    if len(corrs) == 1:
        return 1.0
    m = np.stack([c.ravel() for c in corrs])
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    g = m @ m.T
    return float(len(corrs) ** 2 / np.sum(g * g))


def _off_peak(dy: int, dx: int) -> np.ndarray:
    mask = np.ones((TILE, TILE), bool)
    ys, xs = (np.arange(-CELL, CELL + 1) + dy) % TILE, (np.arange(-CELL, CELL + 1) + dx) % TILE
    mask[np.ix_(ys, xs)] = False
    return mask


def _cell_sums(fold_: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(GRID*GRID,) the fold's bump-weighted sum over each cell of the tile placed at (dy, dx)."""
    aligned = np.roll(fold_, (-dy, -dx), axis=(0, 1))
    return (aligned.reshape(GRID, CELL, GRID, CELL) * LAYOUT.bump[None, :, None, :]).sum((1, 3)).ravel()


def _half_shift() -> np.ndarray:
    """Cell index -> the cell half a tile away along both axes (P' at a cell holds P's value there)."""
    r, c = np.divmod(np.arange(GRID * GRID), GRID)
    return ((r + GRID // 2) % GRID) * GRID + (c + GRID // 2) % GRID


HALF_SHIFT = _half_shift()
SYNC_CELLS = np.zeros(GRID * GRID)
SYNC_CELLS[LAYOUT.sync] = LAYOUT.sync_sign
DATA_CELLS = np.zeros((GRID * GRID, N_BITS))  # cell value per bit (+1 bit)
for _j in range(N_BITS):
    DATA_CELLS[LAYOUT.data[_j], _j] = LAYOUT.data_sign[_j]


def soft_bits(folds: list[np.ndarray], dy: int, dx: int) -> np.ndarray:
    """The 40 bits (about +-1 each) by least squares over every fold. A fold aligned at (dy, dx) holds, per cell,
    a v + b v' (v the tile's cell values, v' those half a tile away, a and b the fold's share of P and P'); a and b
    are fitted on the known sync cells, then the bits on all cells of all folds. Summing the two copies instead
    would read P' as noise of P's own strength in a still frame half-way through a turn."""
    rows, rhs = [], []
    for f in folds:
        y = _cell_sums(f, dy, dx)
        x = np.stack([SYNC_CELLS, SYNC_CELLS[HALF_SHIFT]], 1)
        (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
        rows.append(a * DATA_CELLS + b * DATA_CELLS[HALF_SHIFT])
        rhs.append(y - a * SYNC_CELLS - b * SYNC_CELLS[HALF_SHIFT])
    bits, *_ = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)
    return bits


def decode_soft(soft: np.ndarray, *, chase: bool = False) -> int | None:
    """The payload of soft bits (None if the CRC fails). ``chase``: when it fails, the CHASE_BITS least certain
    bits are flipped, one or two at a time, and a word that then passes the CRC *and* names a known generator is
    taken (Chase decoding; only where the sync is already over the threshold)."""
    payload = bits_payload(soft)
    if payload is None and chase:
        weak = np.argsort(np.abs(soft))[:CHASE_BITS]
        flips = [(int(i),) for i in weak] + [(int(a), int(b)) for k, a in enumerate(weak) for b in weak[k + 1 :]]
        for f in flips:
            trial = soft.copy()
            trial[list(f)] *= -1
            p = bits_payload(trial)
            if p is not None and p >> 20 in KNOWN_GENERATORS:
                return p
    return payload


def read_folds(folds: list[np.ndarray], dy: int, dx: int, *, chase: bool = False) -> tuple[int | None, float]:
    """The payload read from folds aligned at (dy, dx) (None if the CRC fails), and the weakest bit's margin."""
    soft = soft_bits(folds, dy, dx)
    return decode_soft(soft, chase=chase), float(np.abs(soft).min())


def read_bits(acc: np.ndarray, dy: int, dx: int, *, chase: bool = False) -> tuple[int | None, float]:
    """``read_folds`` of one fold."""
    return read_folds([acc], dy, dx, chase=chase)


@dataclass
class Detection:
    found: bool
    payload: int | None
    psr: float  # sync peak over correlation noise (a z)
    score: float  # psr, the ranking across scales
    scale: float
    shift: tuple[int, int]
    bit_margin: float = 0.0  # weakest |bit| over the noise of the bits
    kind: str = "video"  # which statistic: "video" (frames demodulated at the turn) or "image" (single frames)
    confidence: float = 0.0  # the probability that the mark is present (``probability_marked``)


def decode_tile(acc: np.ndarray, scale: float) -> Detection:
    """One fold (of either sign)."""
    return decode_folds([acc], scale, "image")


# --- Calibration: what a reading means --------------------------------------------------------------------------
# Without the mark, the sync statistic (the largest over all shifts and scales, so an extreme value) follows a
# Gumbel law whose location and scale were fitted to real material by benchmarks/watermark_null.py (results in
# benchmarks/results/watermark_null/): real videos for the video statistic, real photos and frames for the image
# one. Its survival function gives the chance that an unmarked video reads a sync at least as strong; a payload
# passing the CRC-16 by chance (or one of the 36 Chase words passing it and naming a known generator) multiplies
# that by CRC_FALSE_ACCEPT: the bits of an unmarked video at the sync's shift are random.
NULL_GUMBEL = {"video": (4.541, 0.273), "image": (3.823, 0.373)}  # (location, scale), from watermark_null.py
CRC_FALSE_ACCEPT = 2.0**-16 + 36 * 2.0**-20
FALSE_POSITIVE_TARGET = 1e-6  # per checked video or image, sync and payload together
# ... and the sync alone must be this rare on real material: the CRC is not left to carry the decision (a real
# video over the sync threshold one time in a thousand, not one in fifty)
SYNC_FALSE_ALARM = 1e-3
# A marked copy reads anywhere from the null's mode to several hundred (heavily attacked to pristine): its density
# is taken flat from there up to MARKED_Z_RANGE. With prior odds 1:1 the posterior is the reported confidence.
MARKED_Z_RANGE = 400.0


def null_survival(z: float, kind: str) -> float:
    """P(an unmarked video or image reads a sync z at least this strong), from the fitted Gumbel law."""
    mu, beta = NULL_GUMBEL[kind]
    return float(-np.expm1(-np.exp(-(z - mu) / beta)))


def false_positive_rate(z: float, kind: str, payload_ok: bool = True) -> float:
    """P(an unmarked video gives this reading: a sync at least z and, if one was read, a payload passing the CRC)."""
    return null_survival(z, kind) * (CRC_FALSE_ACCEPT if payload_ok else 1.0)


def threshold(kind: str) -> float:
    """The sync z needed for "found": a reading with a valid payload then has a false positive rate of at most
    FALSE_POSITIVE_TARGET, and the sync alone is reached by real material at most SYNC_FALSE_ALARM of the time."""
    mu, beta = NULL_GUMBEL[kind]
    s = min(FALSE_POSITIVE_TARGET / CRC_FALSE_ACCEPT, SYNC_FALSE_ALARM)
    return float(mu - beta * np.log(-np.log1p(-s)))


def probability_marked(z: float, kind: str, payload_ok: bool) -> float:
    """P(mark present | reading), prior odds 1:1. ``payload_ok``: a payload passing the CRC was accepted (over the
    threshold). Likelihood without the mark: the null's Gumbel density at z times the CRC's false-accept rate (or
    its complement); with the mark: flat in z from the null's mode up to MARKED_Z_RANGE (a payload accepted or not:
    a weak or damaged copy loses it)."""
    mu, beta = NULL_GUMBEL[kind]
    if z <= mu:  # a sync no stronger than real pictures' most common reading: no evidence of a mark
        return 0.0
    u = (z - mu) / beta
    log_f0 = -np.log(beta) - u - np.exp(-u)  # Gumbel log-density
    log_q0 = np.log(CRC_FALSE_ACCEPT) if payload_ok else np.log1p(-CRC_FALSE_ACCEPT)
    log_l1 = -np.log(MARKED_Z_RANGE)
    return float(1 / (1 + np.exp(np.clip(log_f0 + log_q0 - log_l1, -700, 700))))


PSR_THRESHOLD = threshold("video")  # the video statistic's threshold: Chase decoding and the early stop use it
