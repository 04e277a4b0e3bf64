"""Command-line numbers checked at parse time, with their unit and range: a bad value is one
``parla: error:`` line before any work, never a hang (``--fps -5``), a runaway render (``--fps 100000``) or a
traceback deep in the library (``--pose-scale nan``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from parla.limits import MAX_FPS


def number(kind: type, lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """An argparse ``type``: ``kind`` (int or float) in [lo, hi], finite."""
    what = "an integer" if kind is int else "a number"
    span = f"{lo:g}..{hi:g}{' ' + unit if unit else ''}"

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({span})") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({span})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


fps = number(float, 1, MAX_FPS, "frames per second")
seed = number(int, 0, 2**32 - 1)
pose_scale = number(float, 0, 4, "x the learned head motion")
face_index = number(int, 0, 1000)
seconds = number(float, 0.1, 7 * 24 * 3600, "s")
speed = number(float, 0, 100, "x real time (0: as fast as possible)")
port = number(int, 1, 65535)
threads = number(int, 1, 256)
chunk_ms = number(int, 10, 1000, "ms")
sample_rate = number(int, 8000, 192000, "Hz")
device_index = number(int, 0, 1000)
count = number(int, 1, 1_000_000)
frames = number(int, 1, 100_000)
workers = number(int, 0, 64)
members = number(int, 1, 16, "nets")
resolution = number(int, 32, 2048, "px")


class OneLineParser(argparse.ArgumentParser):
    """argparse with one ``parla: error:`` line (no usage block) and exit 2, like every other error."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix("parla").strip()
        self.exit(2, f"parla: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n")
