"""Parity of exported models against the FP32 PyTorch reference: PSNR / SSIM of the composed face crop, max abs
error of the network output, file size, single-frame latency on this machine."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from parla.edge.render import compose
from parla.errors import require


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over the RGB channels (Gaussian window 11, sigma 1.5; Wang et al. 2004 constants)."""
    cv2 = require("cv2", "core")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(m.mean())


def file_size_mb(path: Path) -> float:
    files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def latency_ms(fn, x: np.ndarray, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time of one single-frame call."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def torch_reference(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))])


def compare(y: np.ndarray, y_ref: np.ndarray, samples, mode: str) -> dict[str, float]:
    crops = [compose(w, x, yy, mode) for w, x, yy in zip(samples.warped, samples.x, y, strict=True)]
    refs = [compose(w, x, yy, mode) for w, x, yy in zip(samples.warped, samples.x, y_ref, strict=True)]
    return {
        "psnr": float(np.mean([min(psnr(a, b), 100.0) for a, b in zip(crops, refs, strict=True)])),
        "ssim": float(np.mean([ssim(a, b) for a, b in zip(crops, refs, strict=True)])),
        "max_abs_error": float(np.abs(y - y_ref).max()),
    }


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"
