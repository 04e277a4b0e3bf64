"""Responsible use: an invisible watermark in every generated frame, its detector (`parla verify`), provenance
tags and an optional visible badge. numpy + OpenCV only (no torch), so the edge runtime embeds it too.

Payload (24 bits, CRC-8 protected; ``core``): 4 bits generator id (Parla), 8 bits model-version code
(CRC-8 of the version string), 12 bits install id (random once per installation, stored in the user's config
folder; ``PARLA_INSTALL_ID`` overrides it). The same model on the same install writes the same mark, so a video
stays reproducible for a seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from parla.errors import ParlaError
from parla.watermark.core import AMPLITUDE, GENERATOR_ID, Accumulator, Detection, Embedder, crc8  # noqa: F401

log = logging.getLogger(__name__)
GENERATORS = {GENERATOR_ID: "Parla"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def install_id() -> int:
    """12-bit id of this installation (created once, atomically, under ~/.config/parla)."""
    env = os.environ.get("PARLA_INSTALL_ID")
    if env:
        return int(env, 0) & 0xFFF
    path = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "parla" / "install_id"
    try:
        return int(path.read_text().strip(), 16) & 0xFFF
    except (OSError, ValueError):
        pass
    value = int.from_bytes(os.urandom(2), "big") & 0xFFF
    try:
        from parla.files import write_text_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, f"{value:03x}\n")
    except OSError as e:
        log.warning("cannot store the install id in %s (%s); using it for this run only", path, e)
    return value


def version_code(version: str) -> int:
    return crc8(version.encode())


def make_payload(version: str, install: int | None = None) -> int:
    inst = install_id() if install is None else install & 0xFFF
    return (GENERATOR_ID << 20) | (version_code(version) << 12) | inst


@dataclass
class Payload:
    generator: str
    version_code: int
    install_id: int
    raw: str

    @classmethod
    def parse(cls, value: int) -> Payload:
        gen = value >> 20
        return cls(GENERATORS.get(gen, f"unknown ({gen})"), (value >> 12) & 0xFF, value & 0xFFF, f"{value:06x}")


class Watermarker:
    """The pipeline stage: ``frame -> frame`` with the mark (and optionally a visible badge)."""

    def __init__(self, version: str, *, badge: bool = False, install: int | None = None) -> None:
        self.payload = make_payload(version, install)
        self.embed = Embedder(self.payload)
        self.badge = badge

    def __call__(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        out = self.embed(frame, index)
        return draw_badge(out) if self.badge else out

    @property
    def tag(self) -> str:
        return f"{self.payload:06x}"


def draw_badge(frame: np.ndarray, text: str = "AI-generated") -> np.ndarray:
    """A small visible label in the bottom-left corner (after the mark, so it does not hide it)."""
    import cv2

    out = np.ascontiguousarray(frame).copy()
    h = out.shape[0]
    scale = max(h / 900, 0.35)
    thick = max(int(round(scale * 2)), 1)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = int(0.02 * h), h - int(0.02 * h)
    cv2.rectangle(out, (x - 4, y - th - 6), (x + tw + 4, y + base), (0, 0, 0), -1)
    cv2.putText(out, text, (x, y - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


@dataclass
class VerifyResult:
    path: str
    found: bool
    payload: dict | None
    confidence: float  # the probability that the mark is present (core.probability_marked)
    psr: float  # the sync z of the reading reported
    scale: float
    frames: int
    statistic: str = "video"  # which reading: "video" (frames demodulated at the turn) or "image" (single frames)
    threshold: float = 0.0  # the sync z needed (with a valid payload) for "found": false positive rate 1e-6
    false_positive_rate: float = 1.0  # of a reading this strong (and its payload, if one was read)
    z_video: float = 0.0  # the strongest sync of each statistic over the checkpoints read (calibration)
    z_image: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


CHECKPOINTS = (8, 16, 32, 64)  # frames after which a video's evidence is weighed: a found mark ends the search,
# and so does, from 32 frames on, evidence too weak to reach the threshold by the last frame (``hopeless``)


def verify(path: str | os.PathLike, max_frames: int = 100) -> VerifyResult:
    """Look for the mark in an image or a video (its first ``max_frames`` consecutive frames: 4 s at 25 fps).

    A clear mark is decided early: at 8, 16, 32 and 64 frames the evidence so far is decoded, and a mark found
    there (the sync over the calibrated threshold and a payload passing the CRC) ends the search; so does evidence
    that could not reach the threshold by ``max_frames`` even growing 1.5x faster than it can
    (``Accumulator.hopeless``)."""
    from parla.files import check_input
    from parla.watermark.core import false_positive_rate, threshold

    p = check_input(path)
    acc = Accumulator()
    d: Detection | None = None
    z_video = z_image = 0.0
    for frame in _frames(p, max_frames):
        acc.add(frame)
        if acc.frames in CHECKPOINTS:
            d = acc.result()
            z_video, z_image = max(z_video, acc.diff_z), max(z_image, acc.static_z)
            if d.found or acc.hopeless(max_frames):
                break
            d = None
    if acc.frames == 0:
        raise ParlaError(f"{p}: no frames to check")
    if d is None:
        d = acc.result()
        z_video, z_image = max(z_video, acc.diff_z), max(z_image, acc.static_z)
    payload = asdict(Payload.parse(d.payload)) if d.found and d.payload is not None else None
    return VerifyResult(
        str(p),
        d.found,
        payload,
        round(d.confidence, 6),
        round(d.psr, 2),
        d.scale,
        acc.frames,
        d.kind,
        round(threshold(d.kind), 2),
        false_positive_rate(d.psr, d.kind, d.payload is not None),
        round(z_video, 2),
        round(z_image, 2),
    )


def _frames(p: Path, max_frames: int):
    from parla.media.image import load_image

    if p.suffix.lower() in IMAGE_SUFFIXES:
        yield load_image(p)
        return
    from parla.media.video import iter_frames

    for i, (_, frame) in enumerate(iter_frames(p)):
        if i >= max_frames:
            break
        yield frame


__all__ = ["AMPLITUDE", "Watermarker", "verify", "make_payload", "Payload", "install_id", "draw_badge"]
