"""Stochastic head motion and blinks, learned from the training clips, and stepped one video frame at a time by
the motion synthesizer (``parla.edge.synth``): bounded state, the same process offline and live. numpy only.

Head motion: one AR(2) process per pose axis (yaw, pitch, roll, tx, ty, log-scale), fitted by least squares on
the training clips, with separate innovation scales for voiced and silent frames, so the head moves more while
speaking. Blinks: a renewal process whose intervals follow a gamma distribution fitted to the blinks detected in
the training clips, each blink shaped like the mean eye-closure profile. VASA-1 uses a diffusion transformer; this
is the lightest model that gives non-repeating, audio-conditioned motion (docs/decisions.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_BLINK_INTERVAL_S = 1.0
# Hard bounds at synthesis (yaw, pitch, roll in degrees; tx, ty in crop px; log-scale): a 2-D warp of one photo
# turns larger rotations into visible distortion, and landmark-based pose in the training clips is noisy.
SAFE_LIMIT = np.array([12.0, 8.0, 6.0, 8.0, 6.0, 0.04])
BLINK_FRAMES_25FPS = (0.0, 0.5, 1.0, 1.0, 0.6, 0.25)  # eye-closure profile of a ~240 ms blink at 25 fps


@dataclass
class HeadModel:
    a1: np.ndarray  # (6,) AR coefficients per axis, at 25 fps
    a2: np.ndarray
    sigma_voiced: np.ndarray  # (6,) innovation std
    sigma_silent: np.ndarray
    limit: np.ndarray  # (6,) hard bound per axis (the training clips' 95th percentile)
    target_std: np.ndarray  # (6,) median over training clips of each clip's std per axis

    def stationary_std(self) -> np.ndarray:
        """Std of the AR(2) process driven by the voiced innovations (analytic)."""
        a1, a2, s = self.a1, self.a2, self.sigma_voiced
        var = s**2 * (1 - a2) / np.maximum((1 + a2) * ((1 - a2) ** 2 - a1**2), 1e-9)
        return np.sqrt(np.maximum(var, 1e-12))

    def gain_bound(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-axis output gain and hard bound. Dynamics come from the fit, amplitude from a typical clip
        (landmark-pose outliers inflate the fitted noise)."""
        return self.target_std / self.stationary_std(), np.minimum(self.limit, SAFE_LIMIT)

    def to_dict(self) -> dict:
        keys = ("a1", "a2", "sigma_voiced", "sigma_silent", "limit", "target_std")
        return {k: getattr(self, k).tolist() for k in keys}

    @classmethod
    def from_dict(cls, d: dict) -> HeadModel:
        return cls(**{k: np.asarray(v, np.float64) for k, v in d.items()})


@dataclass
class BlinkModel:
    shape: float  # gamma shape of the interval between blinks
    mean_interval_s: float
    profile: list[float] = field(default_factory=lambda: list(BLINK_FRAMES_25FPS))

    def profile_at(self, fps: float) -> np.ndarray:
        """The eye-closure profile of one blink (defined at 25 fps) resampled to ``fps``."""
        return np.interp(
            np.arange(0, len(self.profile) * 25 / fps) * fps / 25, np.arange(len(self.profile)), self.profile
        )

    def to_dict(self) -> dict:
        return {"shape": self.shape, "mean_interval_s": self.mean_interval_s, "profile": list(self.profile)}


class HeadProcess:
    """The head model stepped one frame at a time: ``step(voiced)`` -> (6,) pose. ``voiced`` in [0, 1] chooses
    between the two innovation scales; ``silent_scale`` < 1 lets the head settle in pauses."""

    def __init__(
        self, model: HeadModel, rng: np.random.Generator, *, scale: float = 1.0, silent_scale: float = 1.0
    ) -> None:
        self.m, self.rng, self.scale = model, rng, scale
        self.silent = model.sigma_silent * silent_scale
        self.gain, self.bound = model.gain_bound()
        self.state = np.zeros((2, 6))  # the last two values of the AR(2) process

    def step(self, voiced: float) -> np.ndarray:
        m = self.m
        sig = self.silent + voiced * (m.sigma_voiced - self.silent)
        x = m.a1 * self.state[1] + m.a2 * self.state[0] + self.rng.standard_normal(6) * sig
        self.state = np.stack([self.state[1], x])
        return np.clip(x * self.gain, -self.bound, self.bound) * self.scale


class BlinkProcess:
    """The blink renewal process stepped one frame at a time: ``step()`` -> eye closure in [0, 1]."""

    def __init__(self, model: BlinkModel, fps: float, rng: np.random.Generator) -> None:
        self.m, self.fps, self.rng = model, fps, rng
        self.profile = model.profile_at(fps)
        self.frame = 0
        self.next_t = rng.uniform(0.3, 1.5)  # the first blink comes early, so short clips blink too
        self.start: int | None = None  # frame at which the current blink began

    def step(self) -> float:
        t = self.frame / self.fps
        if self.start is None and t >= self.next_t:
            self.start = self.frame
            scale = max(self.m.mean_interval_s - MIN_BLINK_INTERVAL_S, 0.1) / self.m.shape
            self.next_t = t + MIN_BLINK_INTERVAL_S + self.rng.gamma(self.m.shape, scale)
        closure = 0.0
        if self.start is not None:
            i = self.frame - self.start
            if i >= len(self.profile):
                self.start = None
            else:
                closure = float(self.profile[i])
        self.frame += 1
        return closure


def fit_ar2(tracks: list[np.ndarray], voiced: list[np.ndarray]) -> HeadModel:
    """Least-squares AR(2) per axis on (T, 6) pose tracks (each relative to its clip's median, at 25 fps)."""
    a1, a2, sv, ss = (np.zeros(6) for _ in range(4))
    for k in range(6):
        x2 = np.concatenate([p[2:, k] for p in tracks])
        x1 = np.concatenate([p[1:-1, k] for p in tracks])
        x0 = np.concatenate([p[:-2, k] for p in tracks])
        v = np.concatenate([vv[2:] for vv in voiced])
        a = np.stack([x1, x0], 1)
        coef, *_ = np.linalg.lstsq(a, x2, rcond=None)
        a1[k], a2[k] = coef
        resid = x2 - a @ coef
        sv[k] = resid[v > 0.5].std() if (v > 0.5).sum() > 10 else resid.std()
        ss[k] = resid[v <= 0.5].std() if (v <= 0.5).sum() > 10 else resid.std()
    limit = np.percentile(np.abs(np.concatenate(tracks)), 95, axis=0)
    target = np.median(np.stack([p.std(0) for p in tracks]), axis=0)
    return HeadModel(a1, a2, sv, ss, limit, target)


def fit_blinks(intervals_s: list[float]) -> BlinkModel:
    """Gamma fit (method of moments) to the intervals between detected blinks, beyond the refractory second."""
    x = np.asarray([i for i in intervals_s if i > MIN_BLINK_INTERVAL_S]) - MIN_BLINK_INTERVAL_S
    if len(x) < 3:  # too few blinks seen: a typical conversational rate of ~17 per minute
        return BlinkModel(shape=2.0, mean_interval_s=3.5)
    mean, var = x.mean(), x.var() + 1e-6
    return BlinkModel(shape=float(np.clip(mean**2 / var, 0.8, 8.0)), mean_interval_s=float(mean + MIN_BLINK_INTERVAL_S))
