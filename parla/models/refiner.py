"""The refiner generator: a conv-only U-Net that repairs the host-warped face and paints what the warp cannot.

Inputs (all at ``cfg.res``): the warped crop, the source crop (both RGB in [-1, 1]) and the driving-landmark
maps (inner mouth, eyes, outline; in [0, 1]). Output: RGB in [-1, 1] plus a blend mask in [0, 1].
``compose`` applies them to the full-resolution warped crop (docs/decisions.md, "refiner output"):
  residual_mask: out = warped_full + up(mask) * up(rgb - warped_low)  (sharp where the warp was right)
  full:          out = up(rgb)                                           (everything repainted)
No grid_sample, no normalisation layers, no data-dependent control flow: exportable and INT8-friendly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RefinerConfig:
    res: int = 128  # px: the network's working resolution
    crop: int = 256  # px: the crop it is composed into
    channels: tuple[int, ...] = (32, 64, 128, 256)
    n_res: int = 2  # residual blocks at the bottleneck
    cond: int = 3  # driving-landmark map channels
    mode: str = "residual_mask"  # or "full"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RefinerConfig:
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), _act(), nn.Conv2d(ch, ch, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    """Nearest 2x upsampling, concatenation with the skip, two 3x3 convs (no transposed convs: no checkerboard)."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin + cskip, cout, 3, 1, 1), _act(), nn.Conv2d(cout, cout, 3, 1, 1), _act())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], 1))


class Refiner(nn.Module):
    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        cin = 6 + cfg.cond
        ch = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(cin, ch[0], 3, 1, 1), _act())
        # 4x4 stride-2 padding-1 downsampling: quantizes cleanly on LiteRT (toolchain.md).
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), _act()) for a, b in zip(ch[:-1], ch[1:], strict=True)
        )
        self.mid = nn.Sequential(*[_Res(ch[-1]) for _ in range(cfg.n_res)])
        self.up = nn.ModuleList(_Up(b, a, a) for a, b in zip(ch[-2::-1], ch[:0:-1], strict=True))
        self.head = nn.Conv2d(ch[0], 4, 3, 1, 1)

    def forward(self, warped: torch.Tensor, source: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(torch.cat([warped, source, cond], 1))
        skips = [x]
        for d in self.down:
            x = d(x)
            skips.append(x)
        x = self.mid(x)
        for u, s in zip(self.up, reversed(skips[:-1]), strict=True):
            x = u(x, s)
        out = self.head(x)
        rgb = torch.clamp(warped + out[:, :3], -1.0, 1.0)  # a zero head reproduces the warp
        mask = torch.sigmoid(out[:, 3:4])
        return rgb, mask


def compose(
    warped_full: torch.Tensor, warped_low: torch.Tensor, rgb: torch.Tensor, mask: torch.Tensor, mode: str
) -> torch.Tensor:
    """Refiner output at the full crop resolution (see the module docstring)."""
    size = warped_full.shape[-2:]
    if mode == "full":
        return F.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
    delta = F.interpolate(mask * (rgb - warped_low), size=size, mode="bilinear", align_corners=False)
    return (warped_full + delta).clamp(-1, 1)


class EdgeRefiner(nn.Module):
    """The refiner as a single-input, single-output module (what every backend and export format receives):
    x (B, 6 + cond, r, r) -> cat(rgb, mask) (B, 4, r, r)."""

    def __init__(self, refiner: Refiner) -> None:
        super().__init__()
        self.g = refiner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb, mask = self.g(x[:, :3], x[:, 3:6], x[:, 6:])
        return torch.cat([rgb, mask], 1)


def edge_module(refiner: Refiner) -> EdgeRefiner:
    return EdgeRefiner(refiner).eval()
