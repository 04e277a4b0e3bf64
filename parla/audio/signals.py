"""Speech signals per video frame: the speech-band envelope and which frames are clearly voiced or silent. numpy
only; shared by the metrics and the training data (``parla.metrics.av``, ``parla.training.motion``)."""

from __future__ import annotations

import numpy as np

from parla.audio.mel import FRAMES_PER_SECOND, log_mel, speech_band

MIN_FRAMES = 8  # below this a clip has no voiced/silent split


def speech_envelope(audio: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """Speech-band log energy (dB) of 16 kHz audio, one value per video frame (frame i centred on i / fps)."""
    return envelope_from_mel(log_mel(audio), fps, n_frames)


def envelope_from_mel(mel: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """``speech_envelope`` from an already computed log-mel (100 frames per second)."""
    energy = 10 * np.log10(np.exp(mel[:, speech_band()]).sum(1) + 1e-10)
    # Average the 100 fps feature frames that fall within each video frame.
    t = np.arange(len(energy)) / FRAMES_PER_SECOND
    idx = np.clip(np.round(t * fps).astype(int), 0, None)
    sums = np.bincount(idx, weights=energy, minlength=n_frames)[:n_frames]
    counts = np.bincount(idx, minlength=n_frames)[:n_frames]
    out = np.full(n_frames, np.nan)
    out[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return out


def voiced_silent_masks(envelope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames clearly voiced (upper 40 % of the dB range) and clearly silent (lower 20 %, range >= 12 dB)."""
    ok = ~np.isnan(envelope)
    if ok.sum() < MIN_FRAMES:
        return np.zeros_like(ok), np.zeros_like(ok)
    lo, hi = np.percentile(envelope[ok], [5, 95])
    if hi - lo < 12.0:  # no real pause in the clip: nothing can be called silent
        return ok & (envelope > lo), np.zeros_like(ok)
    e = np.where(ok, envelope, -np.inf)
    return e > lo + 0.6 * (hi - lo), ok & (e < lo + 0.2 * (hi - lo))
