"""Limits checked before work: no input may make Parla decode, allocate or render without bound.

Every reader checks its input against these before decoding it: an image's pixel count from its header, a
video's frame size from its container, audio's duration while it is decoded, a config file's size and YAML
aliases. The figures are far above what a portrait, a speech clip or a config needs and far below what would
exhaust a 2-GB edge device.
"""

from __future__ import annotations

import struct

MAX_IMAGE_BYTES = 100 * 2**20  # an image file larger than this is refused unread
MAX_IMAGE_PIXELS = 50_000_000  # 50 MP: a 8000x6000 photo decodes to 144 MB
MAX_VIDEO_PIXELS = 8192 * 4320  # per frame: 8K
MAX_AUDIO_SECONDS = 30 * 60  # offline speech (animate, eval): 30 min is 115 MB of 16 kHz float32
MAX_CONFIG_BYTES = 1 * 2**20  # YAML configs and model folders' config.json
MAX_FPS = 120.0
MAX_FRAMES = 30 * 60 * 120  # one render: 30 min at 120 fps


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, GIF, BMP, WebP or TIFF file; None if the format is
    not one of these or the header is cut short. Read before decoding, so that a small file that decodes to
    gigabytes (a "decompression bomb") is refused unread."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of the first image of a TIFF (tags 256 and 257 of the first IFD)."""
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    (n,) = struct.unpack(e + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for k in range(n):
        tag, typ, _count = struct.unpack(e + "HHI", data[ifd + 2 + 12 * k : ifd + 10 + 12 * k])
        if tag in (256, 257):
            value = data[ifd + 10 + 12 * k : ifd + 14 + 12 * k]
            found[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), value[: 2 if typ == 3 else 4])[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None
