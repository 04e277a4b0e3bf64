"""Counting multiply-accumulates per forward pass (the cost figure of the model card and the benchmarks)."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (convolutions and linear layers)."""
    total = 0

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += out.numel() // out.shape[0] * k
        elif isinstance(mod, nn.Conv1d):
            total += out.numel() // out.shape[0] * mod.kernel_size[0] * mod.in_channels // mod.groups
        elif isinstance(mod, nn.Linear):
            total += out.numel() // out.shape[0] * mod.in_features

    counted = (nn.Conv2d, nn.Conv1d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total
