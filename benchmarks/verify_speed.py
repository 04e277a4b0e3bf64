"""How long `parla verify` takes on every real video of ../shared/data (no mark: the slow case, read until the
evidence is hopeless), with each video's size, frames read, detection statistic and length, to compare with real
time (the seconds of video it read). Run it with the CPU otherwise idle.

    python benchmarks/verify_speed.py --out benchmarks/results/verify_speed
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SUFFIXES = (".mp4", ".mpg", ".mov", ".mkv", ".webm", ".avi")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/verify_speed")
    args = ap.parse_args()
    from parla.export.parity import machine
    from parla.media.video import probe_video
    from parla.watermark import verify

    rows = []
    for folder in (DATA / "eval" / "videos", DATA / "train" / "videos"):
        for v in sorted(folder.iterdir()):
            if v.suffix.lower() not in SUFFIXES:
                continue
            info = probe_video(v)
            t = time.perf_counter()
            r = verify(v)
            seconds = time.perf_counter() - t
            rows.append({"video": v.name, "width": info.width, "height": info.height, "found": r.found,
                         "z": r.psr, "frames_read": r.frames, "verify_s": round(seconds, 2),
                         "clip_s": round(info.n_frames / info.fps, 2),
                         "read_s": round(r.frames / info.fps, 2)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    ratio = [r["verify_s"] / r["clip_s"] for r in rows]
    report = {
        "machine": machine(),
        "videos": len(rows),
        "flagged": sum(r["found"] for r in rows),
        "verify_over_clip_median": round(float(np.median(ratio)), 3),
        "verify_over_clip_max": round(float(np.max(ratio)), 3),
        "slower_than_the_clip": [r["video"] for r, x in zip(rows, ratio, strict=True) if x > 1],
        # per second of video actually read (the frames verify looked at): above 1 is slower than real time
        "verify_over_read_max_1080p": max(
            (r["verify_s"] / r["read_s"] for r in rows if min(r["width"], r["height"]) >= 1080), default=None
        ),  # fmt: skip
        "slower_than_real_time": [r["video"] for r in rows if r["verify_s"] > r["read_s"]],
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
