"""Still images in and out, always as RGB uint8 arrays of shape (H, W, 3)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from parla.errors import ImageReadError, require
from parla.files import atomic_output, check_input
from parla.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, image_size

# OpenCV's own decoder limit, as a second guard behind the header check (read by OpenCV at its first decode)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

MIN_IMAGE_SIDE = 32  # px: below this no face detector can work


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read any image OpenCV can decode (JPEG, PNG, WebP, BMP, TIFF; EXIF orientation applied) as RGB uint8."""
    p = check_input(path)
    size = p.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ImageReadError(f"{p}: {size / 2**20:.0f} MB, over the {MAX_IMAGE_BYTES >> 20} MB limit for an image")
    data = np.fromfile(p, dtype=np.uint8)
    wh = image_size(data.tobytes())
    if wh is None:
        raise ImageReadError(f"{p}: not a readable image (JPEG, PNG, WebP, BMP or TIFF expected)")
    if wh[0] * wh[1] > MAX_IMAGE_PIXELS:
        raise ImageReadError(
            f"{p}: image is {wh[0]}x{wh[1]} px ({wh[0] * wh[1] / 1e6:.0f} MP), over the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP limit; scale it down first"
        )
    cv2 = require("cv2", "core")
    # IMREAD_COLOR drops alpha, expands grey to 3 channels and applies EXIF rotation.
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageReadError(f"{p}: not a readable image (JPEG, PNG, WebP, BMP or TIFF expected)")
    if min(bgr.shape[:2]) < MIN_IMAGE_SIDE:
        raise ImageReadError(f"{p}: image is only {bgr.shape[1]}x{bgr.shape[0]} px, too small for a face")
    return np.ascontiguousarray(bgr[:, :, ::-1])


IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_image_output(path: str | os.PathLike) -> None:
    if Path(path).suffix.lower() not in IMAGE_OUTPUTS:
        raise ImageReadError(f"{path}: cannot write an image with suffix {Path(path).suffix or '(none)'!r} "
                             f"(one of {', '.join(IMAGE_OUTPUTS)})")  # fmt: skip


def save_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image; the format follows the file suffix."""
    cv2 = require("cv2", "core")
    check_image_output(path)
    ok, buf = cv2.imencode(Path(path).suffix, np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ImageReadError(f"{path}: cannot encode an image with suffix {Path(path).suffix}")
    with atomic_output(path) as tmp:
        buf.tofile(tmp)
    return Path(path)
