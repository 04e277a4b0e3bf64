"""Discriminators (training only; the runtime never imports this file).

A multi-scale PatchGAN conditioned on the driving-landmark maps, and a mouth-crop PatchGAN that only sees the
mouth region, where the refiner has to paint teeth and the mouth interior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DiscriminatorConfig:
    channels: tuple[int, ...] = (32, 64, 128)
    scales: int = 2  # full and half resolution
    cond: int = 3
    mouth_size: int = 64  # px: side of the mouth crop the mouth discriminator sees

    def to_dict(self) -> dict:
        return asdict(self)


def _patch(cin: int, channels: tuple[int, ...]) -> nn.ModuleList:
    layers: list[nn.Module] = []
    c = cin
    for ch in channels:
        layers.append(nn.Sequential(nn.Conv2d(c, ch, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)))
        c = ch
    layers.append(nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)))
    layers.append(nn.Conv2d(c, 1, 3, 1, 1))
    return nn.ModuleList(layers)


def _run(layers: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """All intermediate features (for feature matching); the last is the patch logits."""
    feats = []
    for layer in layers:
        x = layer(x)
        feats.append(x)
    return feats


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch: list[nn.ModuleList] = nn.ModuleList(  # type: ignore[assignment]  # a list of ModuleLists
            _patch(3 + cfg.cond, cfg.channels) for _ in range(cfg.scales)
        )
        self.mouth = _patch(3, cfg.channels)

    def forward(self, image: torch.Tensor, cond: torch.Tensor, mouth: torch.Tensor) -> list[list[torch.Tensor]]:
        """image: (B, 3, H, W) in [-1, 1]; cond: maps at H x W; mouth: (B, 3, m, m) mouth crops."""
        x = torch.cat([image, cond], 1)
        outs = []
        for i, layers in enumerate(self.patch):
            outs.append(_run(layers, x))
            if i + 1 < len(self.patch):
                x = F.avg_pool2d(x, 2)
        outs.append(_run(self.mouth, mouth))
        return outs
