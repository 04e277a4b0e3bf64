"""80-bin log-mel spectrogram, 10 ms hop: the one audio feature of training and runtime.

Frame ``t`` is centred on sample ``t * HOP`` (zero-padded at both ends), so a clip of ``n`` samples gives
``1 + n // HOP`` frames. ``StreamingLogMel`` yields exactly the frames of ``log_mel`` on the concatenated
chunks (tested), which is what lets the runtime stream with the features the model was trained on.
"""

from __future__ import annotations

import functools

import numpy as np

from parla.audio.io import SAMPLE_RATE

N_FFT = 512  # samples: FFT size (32 ms)
WIN = 400  # samples: 25 ms Hann window
HOP = 160  # samples: 10 ms at 16 kHz
N_MELS = 80
F_MIN = 55.0  # Hz
F_MAX = 7600.0  # Hz
LOG_FLOOR = 1e-5  # power floor before the log: about -100 dB
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100
SPEECH_BAND = (250.0, 4000.0)  # Hz: where speech energy follows the mouth


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def speech_band() -> np.ndarray:
    """(N_MELS,) bool: the mel bins inside SPEECH_BAND (the voiced/silent decisions and the sync metric use it)."""
    centres = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))[1:-1]
    return (centres >= SPEECH_BAND[0]) & (centres <= SPEECH_BAND[1])


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters, each normalised to unit area."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_freqs[None] - lower) / (centre - lower)
    falling = (upper - fft_freqs[None]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    fb *= 2.0 / (upper - lower)  # equal area, so loudness does not depend on the band's width
    return fb.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(WIN + 1)[:-1].astype(np.float32)


def _frames_to_logmel(frames: np.ndarray) -> np.ndarray:
    """frames: (T, WIN) float32 -> (T, N_MELS) float32.

    The filterbank product runs in float64 and is rounded once: in float32 its last bit depended on the number of
    rows (OpenBLAS 0.3.31 picks another kernel for a 4-frame chunk than for a whole file), and a stream's chunks
    must give the file's features exactly (tests/test_phonemes.py)."""
    spec = np.fft.rfft(frames * _window(), n=N_FFT, axis=1)
    power = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
    return np.log(np.maximum(power @ mel_filterbank().T.astype(np.float64), LOG_FLOOR)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono float32 (n,) -> log-mel (1 + n // HOP, N_MELS) float32."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    padded = np.pad(x, (WIN // 2, WIN // 2))
    n_frames = 1 + len(x) // HOP
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n_frames)[:, None]
    return _frames_to_logmel(padded[idx])


class StreamingLogMel:
    """Incremental ``log_mel``: push chunks of any size, get the frames that became complete."""

    def __init__(self) -> None:
        self._buf = np.zeros(WIN // 2, np.float32)  # the same left padding as log_mel
        self._n_in = 0  # samples pushed
        self._n_out = 0  # frames emitted

    def push(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._n_in += len(x)
        self._buf = np.concatenate([self._buf, x])
        return self._emit(limit=None)

    def flush(self) -> np.ndarray:
        """Pad the end as ``log_mel`` does and return the remaining frames."""
        self._buf = np.concatenate([self._buf, np.zeros(WIN // 2, np.float32)])
        return self._emit(limit=1 + self._n_in // HOP)

    def _emit(self, limit: int | None) -> np.ndarray:
        n = max(0, 1 + (len(self._buf) - WIN) // HOP) if len(self._buf) >= WIN else 0
        if limit is not None:
            n = min(n, limit - self._n_out)
        if n <= 0:
            return np.zeros((0, N_MELS), np.float32)
        idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
        out = _frames_to_logmel(self._buf[idx])
        self._buf = self._buf[n * HOP :]
        self._n_out += n
        return out
