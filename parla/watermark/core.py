"""An invisible, tiled spread-spectrum watermark in every generated frame (issue 6).

Embedding: a 128-px tile of 16 x 16 smooth bumps (8-px cells, each a raised cosine of sign +-1, so that H.264 and
halving the size keep them) is added to R, G and B alike (i.e. to the luma), tiled over the whole frame, at an
amplitude of a few grey levels. 64 cells form a fixed sync pattern; the other 192 carry 32 bits (a 24-bit payload
+ CRC-8), each bit on 6 cells with pseudo-random signs.

Detection: high-pass the luma, fold it into one 128 x 128 tile (the sum over all tile positions and frames, which
averages the picture away and the mark up), find the tile's shift by FFT cross-correlation with the sync pattern,
read the bits at that shift, and accept only when the sync peak stands far above the correlation noise *and* the
CRC matches. Resizing is handled by folding at several scales, cropping by the shift search, a changed frame rate
or a screen capture by the mark being the same in every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parla.errors import require

TILE = 192  # px at the written frame's resolution
CELL = 12  # px per bump
GRID = TILE // CELL  # 16 x 16 cells
KEY = 0x9A4C1A  # seed of the layout (public: a provenance mark, not a secret)
N_SYNC = 64
N_PAYLOAD = 24
N_CRC = 8
N_BITS = N_PAYLOAD + N_CRC
AMPLITUDE = 4.0  # grey levels at a bump's peak: PSNR about 44 dB before clipping
SCALES = (1.0, 2.0, 1.5, 4 / 3, 0.75)  # detector: resize by this (the frame was resized by 1/scale)
PSR_THRESHOLD = 6.0  # sync peak over the correlation noise (std) needed, besides a valid CRC


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
    return Layout(cells[:N_SYNC], rng.choice([-1.0, 1.0], N_SYNC),
                  cells[N_SYNC: N_SYNC + N_BITS * per_bit].reshape(per_bit, N_BITS).T,
                  rng.choice([-1.0, 1.0], (N_BITS, per_bit)), np.outer(w, w))


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


def payload_bits(payload: int) -> np.ndarray:
    """24-bit payload -> 32 bits (+-1) with its CRC-8."""
    if not 0 <= payload < 1 << N_PAYLOAD:
        raise ValueError(f"payload must fit in {N_PAYLOAD} bits")
    word = (int(payload) << N_CRC) | crc8(int(payload).to_bytes(3, "big"))
    return np.array([1.0 if (word >> (N_BITS - 1 - i)) & 1 else -1.0 for i in range(N_BITS)])


def bits_payload(bits: np.ndarray) -> int | None:
    """Decoded bits -> the payload, or None when the CRC does not match."""
    word = 0
    for b in bits:
        word = (word << 1) | int(b > 0)
    payload, crc = word >> N_CRC, word & ((1 << N_CRC) - 1)
    return payload if crc8(payload.to_bytes(3, "big")) == crc else None


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
    """Adds the payload's tiled pattern to RGB uint8 frames (the tiled field is cached per frame size)."""

    def __init__(self, payload: int, amplitude: float = AMPLITUDE) -> None:
        self.payload, self.amplitude = payload, amplitude
        self.tile = pattern(payload) * amplitude
        self._field: dict[tuple[int, int], np.ndarray] = {}

    def field_for(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._field:
            reps = (-(-h // TILE), -(-w // TILE))
            self._field = {(h, w): np.tile(self.tile, reps)[:h, :w, None]}
        return self._field[(h, w)]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        f = self.field_for(*frame.shape[:2])
        return np.clip(frame.astype(np.float32) + f, 0, 255).round().astype(np.uint8)


def highpass_luma(frame: np.ndarray) -> np.ndarray:
    """Luma minus its local mean, divided by its local contrast: the picture becomes roughly unit-variance noise
    (edges no longer dominate the fold) while the 8-px bumps stay."""
    cv2 = require("cv2", "core")
    y = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) if frame.ndim == 3 \
        else frame.astype(np.float32)
    hp = y - cv2.GaussianBlur(y, (0, 0), CELL / 2)
    return hp / (np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), CELL)) + 1.0)


def fold(hp: np.ndarray) -> np.ndarray:
    """Sum of all TILE x TILE blocks of a high-passed image (zero-padded at the ends)."""
    h, w = hp.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    pad = np.zeros((ph, pw), np.float32)
    pad[:h, :w] = hp
    return pad.reshape(ph // TILE, TILE, pw // TILE, TILE).sum((0, 2))


class Accumulator:
    """Folds frames at every candidate scale; ``result()`` decodes what was gathered so far."""

    def __init__(self, scales: tuple[float, ...] = SCALES) -> None:
        self.scales = scales
        self.acc = {s: np.zeros((TILE, TILE), np.float64) for s in scales}
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        cv2 = require("cv2", "core")
        for s in self.scales:
            f = frame if s == 1.0 else cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
            if min(f.shape[:2]) >= CELL * 4:
                self.acc[s] += fold(highpass_luma(f))
        self.frames += 1

    def result(self) -> Detection:
        best = None
        for s, acc in self.acc.items():
            d = decode_tile(acc, s)
            if best is None or d.score > best.score:
                best = d
        return best if best is not None else Detection(False, None, 0.0, 0.0, 1.0, (0, 0))


@dataclass
class Detection:
    found: bool
    payload: int | None
    psr: float  # sync peak over correlation noise
    score: float  # psr, the ranking across scales
    scale: float
    shift: tuple[int, int]
    bit_margin: float = 0.0  # weakest |bit| over the noise of the bits

    @property
    def confidence(self) -> float:
        """0..1: how far the sync peak stands above the detection threshold (a logistic of the PSR)."""
        if not self.found:
            return 0.0
        return float(1 / (1 + np.exp(-(self.psr - PSR_THRESHOLD))))


def decode_tile(acc: np.ndarray, scale: float) -> Detection:
    spec = np.fft.fft2(acc) * np.conj(np.fft.fft2(sync_template()))
    corr = np.real(np.fft.ifft2(spec))
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    peak = corr[dy, dx]
    mask = np.ones_like(corr, bool)
    for oy in range(-CELL, CELL + 1):
        for ox in range(-CELL, CELL + 1):
            mask[(dy + oy) % TILE, (dx + ox) % TILE] = False
    noise = corr[mask]
    psr = float((peak - noise.mean()) / max(noise.std(), 1e-9))
    aligned = np.roll(acc, (-dy, -dx), axis=(0, 1))
    cell_sums = (aligned.reshape(GRID, CELL, GRID, CELL) * LAYOUT.bump[None, :, None, :]).sum((1, 3)).ravel()
    soft = (cell_sums[LAYOUT.data] * LAYOUT.data_sign).sum(1)
    payload = bits_payload(soft)
    sync_vals = cell_sums[LAYOUT.sync] * LAYOUT.sync_sign
    margin = float(np.abs(soft).min() / max(np.abs(sync_vals).mean() * 2, 1e-9))
    found = psr >= PSR_THRESHOLD and payload is not None
    return Detection(found, payload if found else None, psr, psr, scale, (int(dy), int(dx)), margin)
