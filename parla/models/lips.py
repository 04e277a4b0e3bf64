"""The audio -> lips network (LipNet): a causal dilated temporal CNN over log-mel with a small look-ahead.

It predicts the (standardised) expression coefficients of the lips and jaw deterministically, at the mel frame
rate (100 Hz); the caller samples it at the video frame times. ``LipNetConfig.members`` > 1 makes it an ensemble:
that many nets of the same shape, trained from different seeds, their outputs averaged inside one module (one
graph to export, one call per window). Head motion and blinks are stochastic and live in
``parla.models.head_blink`` (learned stochastic models), not in this network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LipNetConfig:
    n_mels: int = 80
    n_coeffs: int = 20
    width: int = 64
    dropout: float = 0.2  # between blocks, training only: 52 clips overfit a 128-wide net in 200 steps
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2)
    lookahead: int = 8  # mel frames (80 ms) of future audio each output may see
    closure: bool = False  # one more output channel: the logit that the lips touch (/p b m/, pauses) at that frame
    members: int = 1  # nets averaged (an ensemble of seeds; three ship: docs/training.md)

    @property
    def receptive_field(self) -> int:
        return 5 + 2 * sum(self.dilations)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LipNetConfig:
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)


class _CausalConv(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (pad, 0)))


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.a = _CausalConv(width, width, 3, dilation=dilation)
        self.b = _CausalConv(width, width, 3, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.leaky_relu(self.a(F.leaky_relu(x, 0.2)), 0.2))


class LipNet(nn.Module):
    def __init__(self, cfg: LipNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = _CausalConv(cfg.n_mels, cfg.width, 5)
        layers = [m for d in cfg.dilations for m in (_Block(cfg.width, d), nn.Dropout(cfg.dropout))]
        self.blocks = nn.Sequential(*layers)
        self.out = nn.Conv1d(cfg.width, cfg.n_coeffs + int(cfg.closure), 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, M) normalised inputs -> (B, n_coeffs (+1: the closure logit), M); output t has seen
        input frames <= t + lookahead.

        The look-ahead is realised by shifting: the network is causal, and output t is read at index t + lookahead
        of a sequence padded at the end with ``lookahead`` frames of the last mel frame.
        """
        la = self.cfg.lookahead
        x = F.pad(mel, (0, la), mode="replicate") if la else mel
        y = self.out(F.leaky_relu(self.blocks(self.inp(x)), 0.2))
        return y[..., la:]


class LipEnsemble(nn.Module):
    """``cfg.members`` LipNets of one shape, their outputs averaged: the input, look-ahead and output of one."""

    def __init__(self, cfg: LipNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.nets = nn.ModuleList(LipNet(replace(cfg, members=1)) for _ in range(cfg.members))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        out = self.nets[0](mel)
        for net in self.nets[1:]:  # a chain of adds: plain ops in every export format
            out = out + net(mel)
        return out / len(self.nets)


def build_lipnet(cfg: LipNetConfig) -> LipNet | LipEnsemble:
    """The lips net a config describes: one LipNet, or an ensemble of ``cfg.members``."""
    if cfg.members < 1:
        raise ValueError(f"LipNetConfig.members must be >= 1, got {cfg.members}")
    return LipNet(cfg) if cfg.members == 1 else LipEnsemble(cfg)


def ensemble(nets: list[LipNet]) -> LipNet | LipEnsemble:
    """One module averaging trained nets of the same config (their weights copied)."""
    if any(n.cfg != nets[0].cfg for n in nets):
        raise ValueError("an ensemble needs nets of one config")
    if len(nets) == 1:
        return nets[0]
    out = LipEnsemble(replace(nets[0].cfg, members=len(nets)))
    for dst, src in zip(out.nets, nets, strict=True):
        dst.load_state_dict(src.state_dict())
    return out.eval()
