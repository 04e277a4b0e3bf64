"""Tensor operations around the networks (the PyTorch FP32 reference path): load a model bundle, turn audio into
per-frame motion, turn a warped crop into a refined crop. No media I/O here (that is ``parla.pipeline``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.errors import ModelNotFoundError, require
from parla.face.expression import ExpressionBasis
from parla.motion import BlinkModel, HeadModel

EMOTIONS = ("neutral", "happy", "sad", "surprised")


@dataclass
class Motion:
    coeffs: np.ndarray  # (T, K) expression coefficients (basis units, not standardised)
    pose: np.ndarray  # (T, 6) yaw, pitch, roll, tx, ty, log-scale
    blink: np.ndarray  # (T,) eye closure 0..1
    mouth_close: np.ndarray  # (T,) 0..1: closes the lips in pauses of the speech


class ModelBundle:
    """A folder with config.json, refiner.safetensors, motion.safetensors and basis.npz, checked by sha256."""

    def __init__(self, folder: str | Path, device: str | None = None, net: str = "teacher") -> None:
        torch = require("torch", "train")
        from parla.models.motion import MotionConfig, MotionNet
        from parla.models.refiner import Refiner, RefinerConfig
        from parla.training.checkpoint import load_weights, sha256

        self.folder = Path(folder)
        cfg_path = self.folder / "config.json"
        if not cfg_path.is_file():
            raise ModelNotFoundError(f"{self.folder}: not a Parla model (no config.json)")
        self.config = json.loads(cfg_path.read_text())
        for name, digest in self.config.get("sha256", {}).items():
            if sha256(self.folder / name) != digest:
                raise ModelNotFoundError(f"{self.folder / name}: checksum mismatch (corrupt or modified model file)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if net not in ("teacher", "student"):
            raise ValueError(f"net must be teacher or student, not {net!r}")
        if net == "student" and "student" not in self.config:
            raise ModelNotFoundError(f"{self.folder}: this model folder has no distilled student")
        section = self.config["student"]["refiner"] if net == "student" else self.config["refiner"]
        self.net = net
        self.refiner_cfg = RefinerConfig.from_dict(section)
        self.refiner = Refiner(self.refiner_cfg).eval().to(self.device)
        load_weights(self.refiner, self.folder / f"{'student' if net == 'student' else 'refiner'}.safetensors",
                     self.device)
        self.motion_cfg = MotionConfig.from_dict(self.config["motion"])
        self.motion_net = MotionNet(self.motion_cfg).eval().to(self.device)
        load_weights(self.motion_net, self.folder / "motion.safetensors", self.device)
        self.mel_norm = (np.asarray(self.config["mel_mean"], np.float32),
                         np.asarray(self.config["mel_std"], np.float32))
        # articulation_gain: fitted (the regressor under-articulates); render_gain: calibrated on rendered video
        c = self.config
        self.articulation = float(c.get("articulation_gain", 1.0)) * float(c.get("render_gain", 1.0))
        # Pauses: the lip/jaw coefficients are replaced by their running mean over this many seconds, so that
        # the mouth holds its (closed) shape instead of twitching with the network's output (0: off).
        self.silence_hold_s = float(self.config.get("silence_hold_s", 0.0))
        self.head_silent_scale = float(self.config.get("head_silent_scale", 1.0))
        self.head = HeadModel.from_dict(self.config["head"])
        self.blink = BlinkModel(**self.config["blink"])
        self.basis = ExpressionBasis.load(self.folder / "basis.npz")

    def motion(self, audio: np.ndarray, fps: float, n_frames: int, *, seed: int = 0, pose_scale: float = 1.0,
               emotion: np.ndarray | None = None) -> Motion:
        """Per-frame motion for 16 kHz audio: deterministic lips and jaw, seeded head motion and blinks."""
        import torch

        from parla.audio.mel import log_mel

        mel = log_mel(audio)
        x = torch.from_numpy(((mel - self.mel_norm[0]) / self.mel_norm[1]).T[None].astype(np.float32))
        with torch.no_grad():
            z = self.motion_net(x.to(self.device))[0].cpu().numpy().T  # (M, K) standardised
        coeffs, close, voiced = lip_motion(z, mel, fps, n_frames, self.articulation * self.basis.stds,
                                           self.silence_hold_s)
        rng = np.random.default_rng(seed)
        if emotion is not None:
            coeffs = coeffs + emotion[None]
        soft = np.ones(5) / 5  # on/off of speech over 200 ms, not per frame
        pose = self.head.sample(np.convolve(voiced.astype(float), soft, mode="same"), rng, scale=pose_scale,
                                silent_scale=self.head_silent_scale)
        return Motion(coeffs, pose, self.blink.sample(n_frames, fps, rng), close)

    def refine(self, warped: np.ndarray, warped_lr: np.ndarray, source_lr: np.ndarray,
               cond: np.ndarray) -> np.ndarray:
        """Batch: warped (B, S, S, 3) uint8, *_lr (B, r, r, 3) uint8, cond (B, C, r, r) -> (B, S, S, 3) uint8."""
        import torch

        from parla.models.refiner import compose

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0).to(self.device)

        with torch.no_grad():
            w_lr = t(warped_lr)
            rgb, mask = self.refiner(w_lr, t(source_lr), torch.from_numpy(cond).to(self.device))
            out = compose(t(warped), w_lr, rgb, mask, self.refiner_cfg.mode)
        return ((out.cpu().numpy().transpose(0, 2, 3, 1) + 1) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)


def lip_motion(z: np.ndarray, mel: np.ndarray, fps: float, n_frames: int, scale: np.ndarray | float,
               silence_hold_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's standardised lip/jaw output at the mel rate -> per-frame coefficients (times ``scale``),
    with the lips held closed in pauses. Returns (coeffs (T, K), mouth closure (T,), voiced mask (T,))."""
    from parla.audio.mel import FRAMES_PER_SECOND
    from parla.metrics.av import envelope_from_mel, voiced_silent_masks

    t = np.arange(n_frames) / fps * FRAMES_PER_SECOND
    z = np.stack([np.interp(t, np.arange(len(z)), z[:, k]) for k in range(z.shape[1])], 1)
    coeffs = z * scale
    voiced, silent = voiced_silent_masks(envelope_from_mel(mel, fps, n_frames))
    close = _closure(silent, ramp=3)
    if silence_hold_s > 0:
        coeffs = coeffs + close[:, None] * (_running_mean(coeffs, int(silence_hold_s * fps)) - coeffs)
    return coeffs, close, voiced


def _closure(silent: np.ndarray, ramp: int) -> np.ndarray:
    """1 on silent frames, falling linearly to 0 over ``ramp`` frames on either side of them.

    The lips close before a pause begins and open as speech resumes, so that they are still (not closing)
    during the pause itself.
    """
    return np.clip(1 - _distance_transform(silent) / (ramp + 1), 0, 1)


def _running_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 (shorter windows at the ends)."""
    width = min(width, len(x))  # np.convolve(mode="same") returns the longer of its inputs
    if width <= 1:
        return x
    k = np.ones(width)
    num = np.stack([np.convolve(x[:, j], k, mode="same") for j in range(x.shape[1])], 1)
    return num / np.convolve(np.ones(len(x)), k, mode="same")[:, None]


def _distance_transform(mask: np.ndarray) -> np.ndarray:
    """Frames to the nearest True (inf if none), in two linear passes."""
    d = np.where(mask, 0.0, np.inf)
    for i in range(1, len(d)):
        d[i] = min(d[i], d[i - 1] + 1)
    for i in range(len(d) - 2, -1, -1):
        d[i] = min(d[i], d[i + 1] + 1)
    return d


def emotion_vector(spec: str | None, basis: ExpressionBasis) -> np.ndarray | None:
    """An expression offset from a name (neutral, happy, sad, surprised) or K comma-separated coefficients
    in units of each component's training std."""
    from parla.errors import ParlaError

    if spec is None or spec == "neutral":
        return None
    if spec in EMOTIONS:
        return basis.encode(_emotion_offsets(spec, basis.mean_shape.astype(np.float64)))
    try:
        v = np.array([float(x) for x in spec.split(",")])
    except ValueError as e:
        raise ParlaError(f"--emotion: expected one of {', '.join(EMOTIONS)} or {basis.n_components} numbers") from e
    if len(v) != basis.n_components:
        raise ParlaError(f"--emotion: expected {basis.n_components} comma-separated numbers, got {len(v)}")
    return v * basis.stds


def _emotion_offsets(name: str, shape: np.ndarray) -> np.ndarray:
    """Landmark displacements of a mild expression, in the canonical frame (units: fraction of face width)."""
    w = shape[:, 0].max() - shape[:, 0].min()
    d = np.zeros_like(shape)
    if name == "happy":  # mouth corners up and out, cheeks lift the lower eyelids a little
        d[48] += (-0.03, -0.035)
        d[54] += (0.03, -0.035)
        d[[49, 53, 59, 55]] += (0.0, -0.015)
        d[[40, 41, 46, 47]] += (0.0, -0.008)
    elif name == "sad":  # corners down, inner brows up
        d[[48, 54]] += (0.0, 0.03)
        d[[21, 22]] += (0.0, -0.03)
    elif name == "surprised":  # brows up, jaw slightly open
        d[17:27] += (0.0, -0.04)
        d[[56, 57, 58, 65, 66, 67, 7, 8, 9]] += (0.0, 0.04)
    return d * w
