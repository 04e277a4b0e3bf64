"""Losses of the refiner GAN (DESIGN §4): multi-scale L1, SSIM, hinge GAN, feature matching, mouth-weighted L1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MOUTH_POINTS = slice(48, 68)


def l1_pyramid(x: torch.Tensor, y: torch.Tensor, levels: int = 3) -> torch.Tensor:
    loss = x.new_zeros(())
    for i in range(levels):
        loss = loss + F.l1_loss(x, y)
        if i + 1 < levels:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return loss / levels


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SSIM with a 7x7 box window, on images in [-1, 1]."""
    x, y = (x + 1) / 2, (y + 1) / 2
    c1, c2 = 0.01**2, 0.03**2
    mx, my = F.avg_pool2d(x, 7, 1, 3), F.avg_pool2d(y, 7, 1, 3)
    vx = F.avg_pool2d(x * x, 7, 1, 3) - mx * mx
    vy = F.avg_pool2d(y * y, 7, 1, 3) - my * my
    cxy = F.avg_pool2d(x * y, 7, 1, 3) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1 - s.mean()


def mouth_boxes(landmarks: torch.Tensor, size: int, scale: float = 1.6) -> torch.Tensor:
    """(B, 4) integer square boxes x0, y0, x1, y1 around the mouth landmarks, inside the image."""
    m = landmarks[:, MOUTH_POINTS]
    centre = (m.amin(1) + m.amax(1)) / 2
    half = ((m.amax(1) - m.amin(1)).amax(1) * scale / 2).clamp(min=8, max=size / 2 - 1)
    x0 = (centre[:, 0] - half).clamp(0, None)
    y0 = (centre[:, 1] - half).clamp(0, None)
    x0 = torch.minimum(x0, size - 2 * half)
    y0 = torch.minimum(y0, size - 2 * half)
    return torch.stack([x0, y0, x0 + 2 * half, y0 + 2 * half], 1).round().long()


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, out: int) -> torch.Tensor:
    crops = [
        F.interpolate(img[None, :, y0:y1, x0:x1], size=(out, out), mode="bilinear", align_corners=False)
        for img, (x0, y0, x1, y1) in zip(images, boxes.tolist(), strict=True)
    ]
    return torch.cat(crops)


def hinge_d(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    loss = real[0][-1].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        loss = loss + F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean()
    return loss / len(real)


def hinge_g(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return -sum(f[-1].mean() for f in fake) / len(fake)


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    loss, n = fake[0][0].new_zeros(()), 0
    for r, f in zip(real, fake, strict=True):
        for rf, ff in zip(r[:-1], f[:-1], strict=True):
            loss = loss + F.l1_loss(ff, rf.detach())
            n += 1
    return loss / max(n, 1)
