"""Cost of embedding the watermark per frame (the frame stage every generated frame goes through), at the sizes
Parla writes: the 512² demo, a 1080² photo, 1080p. Median of 200 calls each, one thread, the CPU otherwise idle.

    python benchmarks/watermark_cost.py --out benchmarks/results/watermark_cost
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SIZES = {"512x512": (512, 512), "1080x1080": (1080, 1080), "1920x1080": (1080, 1920)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/watermark_cost")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    import cv2

    from parla.export.parity import machine
    from parla.watermark import Watermarker

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    wm = Watermarker("cost-check", install=0x123)
    rows = {}
    for name, (h, w) in SIZES.items():
        frame = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
        for i in range(40):  # every phase's tiles cached, as in a running stream
            wm(frame, i)
        times = []
        for i in range(args.calls):
            t = time.perf_counter()
            wm(frame, i)
            times.append((time.perf_counter() - t) * 1e3)
        rows[name] = {
            "median_ms": round(float(np.median(times)), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3),
        }
        print(name, rows[name], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost.json").write_text(json.dumps({"machine": machine(), "ms_per_frame": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
