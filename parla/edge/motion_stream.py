"""Streaming audio -> per-frame motion for the on-device runtime (numpy + an exported motion net).

The offline path (``parla.wrapper.ModelBundle.motion``) sees the whole clip; here audio arrives in chunks and
each video frame is emitted as soon as the audio it depends on has arrived:

- log-mel frames come from ``StreamingLogMel`` (identical to the offline features);
- the motion net runs on the last ``MOTION_WINDOW`` mel frames; frame t is read once mel frame t + lookahead
  exists, so it sees exactly the look-ahead it was trained with (80 ms);
- what the offline path computes over the whole clip becomes causal here, with bounded state: the voiced/silent
  thresholds come from the last ``LEVEL_WINDOW_S`` seconds, the lips close and open on a ramp, the silence hold
  is a trailing mean, head motion is the same AR(2) process stepped one frame at a time, blinks the same
  renewal process. Silence (nobody speaking) gives the idle animation: closed mouth, a calm head, breathing, blinks.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.audio.io import SAMPLE_RATE
from parla.audio.mel import FRAMES_PER_SECOND, HOP, StreamingLogMel
from parla.face.expression import ExpressionBasis
from parla.metrics.av import speech_band
from parla.motion import MIN_BLINK_INTERVAL_S, BlinkModel, HeadModel

MOTION_WINDOW = 64  # mel frames per call of the exported motion net (parla.export.exporter.MOTION_WINDOW)
LEVEL_WINDOW_S = 10.0  # seconds of speech level behind the voiced/silent thresholds
ABS_SILENCE_DB = -25.0  # speech-band level under which a frame is silent whatever the recent range (floor: -32.7)
BREATH_HZ = 0.25  # idle breathing: a slow rise and fall of the head
BREATH_PX = 0.6  # crop pixels (ty) at the peak of a breath
CLOSE_RAMP = 3  # frames for the lips to close or open at a pause


@dataclass
class MotionSettings:
    """What the model folder's config.json says about synthesis (numpy only)."""

    mel_mean: np.ndarray
    mel_std: np.ndarray
    articulation: float
    silence_hold_s: float
    head_silent_scale: float
    head: HeadModel
    blink: BlinkModel
    basis: ExpressionBasis
    lookahead: int
    receptive_field: int  # mel frames the net's output depends on

    @classmethod
    def from_folder(cls, folder: str | Path) -> MotionSettings:
        folder = Path(folder)
        c = json.loads((folder / "config.json").read_text())
        return cls(np.asarray(c["mel_mean"], np.float32), np.asarray(c["mel_std"], np.float32),
                   float(c.get("articulation_gain", 1.0)) * float(c.get("render_gain", 1.0)),
                   float(c.get("silence_hold_s", 0.0)), float(c.get("head_silent_scale", 1.0)),
                   HeadModel.from_dict(c["head"]), BlinkModel(**c["blink"]), ExpressionBasis.load(folder / "basis.npz"),
                   int(c["motion"].get("lookahead", 8)),
                   5 + 2 * sum(c["motion"].get("dilations", (1, 2, 4, 8, 1, 2))))


@dataclass
class FrameMotion:
    index: int  # video frame number (time = index / fps)
    coeffs: np.ndarray  # (K,)
    pose: np.ndarray  # (6,)
    blink: float
    mouth_close: float
    voiced: bool
    z: np.ndarray  # (K,) the motion net's standardised output, before gains (for checks against the offline net)


class StreamingMotion:
    """Push 16 kHz audio chunks, pull the frames whose audio is complete. Memory is bounded whatever the length."""

    def __init__(self, settings: MotionSettings, run_motion, *, fps: float = 25.0, seed: int = 0,
                 pose_scale: float = 1.0, emotion: np.ndarray | None = None) -> None:
        """``run_motion``: (1, 80, MOTION_WINDOW) normalised mel -> (1, K, MOTION_WINDOW) standardised coeffs."""
        self.s, self.run_motion, self.fps = settings, run_motion, fps
        self.pose_scale, self.emotion = pose_scale, emotion
        self.rng = np.random.default_rng(seed)
        self.mel = StreamingLogMel()
        self.window = np.tile(((np.log(1e-5) - settings.mel_mean) / settings.mel_std)[:, None], (1, MOTION_WINDOW))
        self.window = self.window.astype(np.float32)  # starts as digital silence
        self.energy = deque(maxlen=MOTION_WINDOW)  # speech-band dB of the mel frames in the window
        self.n_mel = 0  # mel frames pushed
        self.z: np.ndarray | None = None  # last net output (K, W)
        self.next_frame = 0
        self.level = deque(maxlen=int(LEVEL_WINDOW_S * fps))
        self.hold = deque(maxlen=max(1, int(settings.silence_hold_s * fps)))
        self.voiced_hist = deque(maxlen=5)  # 200 ms at 25 fps, as offline
        self.close = 1.0  # start with the lips at rest
        self.head_state = np.zeros((2, 6))
        self.gain, self.bound = settings.head.gain_bound()
        self.blink_prof = settings.blink.profile_at(fps)
        self.next_blink_t = self.rng.uniform(0.3, 1.5)
        self.blink_at: int | None = None
        self._band = speech_band()
        silent_db = 10 * math.log10(float(self._band.sum()) * 1e-5 + 1e-10)  # the window starts as digital silence
        self.energy.extend([silent_db] * MOTION_WINDOW)
        self.timer = None  # a StageTimer, set by the engine

    @property
    def latency_samples(self) -> int:
        """Audio that must arrive after a frame's instant before that frame can be produced."""
        return (self.s.lookahead + 1) * HOP + 256  # look-ahead + the STFT half-window (N_FFT / 2)

    def push(self, chunk: np.ndarray) -> list[FrameMotion]:
        t0 = time.perf_counter()
        mel = self.mel.push(chunk)
        if self.timer is not None:
            self.timer.add("audio_features", (time.perf_counter() - t0) * 1e3)
        out: list[FrameMotion] = []
        # A long chunk is taken in pieces, so that every frame is read where the window holds its whole receptive
        # field: the output then does not depend on how the audio was chunked.
        step = max(1, MOTION_WINDOW - 1 - self.s.lookahead - self.s.receptive_field)
        for i in range(0, len(mel), step):
            self._add_mel(mel[i: i + step])
            out += self._frames()
        return out

    def flush(self, n_samples: int) -> list[FrameMotion]:
        """End of input after ``n_samples`` samples in all: the remaining frames up to the audio's length, their
        look-ahead being the silence after it (as the offline path pads the end)."""
        n = int(round(n_samples / SAMPLE_RATE * self.fps))
        tail = self.push(np.zeros(self.latency_samples + SAMPLE_RATE // 10, np.float32))
        return [fm for fm in tail if fm.index < n]

    def _add_mel(self, mel: np.ndarray) -> None:
        norm = ((mel - self.s.mel_mean) / self.s.mel_std).T.astype(np.float32)
        k = min(len(mel), MOTION_WINDOW)
        self.window = np.concatenate([self.window[:, k:], norm[:, -k:]], axis=1)
        for row in mel:
            self.energy.append(10 * math.log10(float(np.exp(row[self._band]).sum()) + 1e-10))
        self.n_mel += len(mel)
        t0 = time.perf_counter()
        self.z = np.asarray(self.run_motion(self.window[None]))[0]  # (K, W)
        if self.timer is not None:
            self.timer.add("motion", (time.perf_counter() - t0) * 1e3)

    def _frames(self) -> list[FrameMotion]:
        out = []
        while True:
            t_mel = self.next_frame / self.fps * FRAMES_PER_SECOND
            hi = math.ceil(t_mel)
            if hi + self.s.lookahead > self.n_mel - 1:  # its look-ahead has not arrived yet
                return out
            out.append(self._frame(t_mel))
            self.next_frame += 1

    def _frame(self, t_mel: float) -> FrameMotion:
        s = self.s
        # Index of mel frame m in the window: the window ends at mel frame n_mel - 1. The net's output at index i
        # has seen the window up to i + lookahead (it pads the end internally), so exact outputs end at W-1-la.
        pos = t_mel - (self.n_mel - MOTION_WINDOW)
        lo = int(math.floor(pos))
        frac = pos - lo
        z = self.z[:, lo] * (1 - frac) + self.z[:, min(lo + 1, MOTION_WINDOW - 1)] * frac
        coeffs = z * s.articulation * s.basis.stds
        e_lo = max(0, int(round(pos - FRAMES_PER_SECOND / self.fps / 2)))
        e_hi = max(e_lo + 1, int(round(pos + FRAMES_PER_SECOND / self.fps / 2)))
        energy = float(np.mean(list(self.energy)[e_lo:e_hi]))
        voiced, silent = self._classify(energy)
        target = 1.0 if silent else 0.0
        self.close += float(np.clip(target - self.close, -1 / (CLOSE_RAMP + 1), 1 / (CLOSE_RAMP + 1)))
        self.hold.append(coeffs)
        if s.silence_hold_s > 0:
            coeffs = coeffs + self.close * (np.mean(self.hold, axis=0) - coeffs)
        if self.emotion is not None:
            coeffs = coeffs + self.emotion
        self.voiced_hist.append(float(voiced))
        pose = self._head(float(np.mean(self.voiced_hist)))
        return FrameMotion(self.next_frame, coeffs, pose, self._blink(), self.close, voiced, z)

    def _classify(self, energy: float) -> tuple[bool, bool]:
        self.level.append(energy)
        lo, hi = np.percentile(self.level, [5, 95]) if len(self.level) >= 10 else (energy, energy)
        if energy < ABS_SILENCE_DB:
            return False, True
        if hi - lo < 12.0:
            return energy > lo, False
        return energy > lo + 0.6 * (hi - lo), energy < lo + 0.2 * (hi - lo)

    def _head(self, voiced: float) -> np.ndarray:
        h = self.s.head
        silent = h.sigma_silent * self.s.head_silent_scale
        sig = silent + voiced * (h.sigma_voiced - silent)
        x = h.a1 * self.head_state[1] + h.a2 * self.head_state[0] + self.rng.standard_normal(6) * sig
        self.head_state = np.stack([self.head_state[1], x])
        pose = np.clip(x * self.gain, -self.bound, self.bound) * self.pose_scale
        breath = math.sin(2 * math.pi * BREATH_HZ * self.next_frame / self.fps)
        pose[4] += BREATH_PX * breath * (1.0 - voiced) * self.pose_scale  # breathing shows when the face is still
        return pose

    def _blink(self) -> float:
        t = self.next_frame / self.fps
        if self.blink_at is None and t >= self.next_blink_t:
            self.blink_at = self.next_frame
            b = self.s.blink
            scale = max(b.mean_interval_s - MIN_BLINK_INTERVAL_S, 0.1) / b.shape
            self.next_blink_t = t + MIN_BLINK_INTERVAL_S + self.rng.gamma(b.shape, scale)
        if self.blink_at is None:
            return 0.0
        i = self.next_frame - self.blink_at
        if i >= len(self.blink_prof):
            self.blink_at = None
            return 0.0
        return float(self.blink_prof[i])
