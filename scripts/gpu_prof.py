"""Throughput of the training-pair workers: python scripts/gpu_prof.py WORKERS BATCH [DATA]."""

import sys
import time

from parla.training.data import batches

if __name__ == "__main__":
    w, n = int(sys.argv[1]), int(sys.argv[2])
    s = batches(sys.argv[3] if len(sys.argv) > 3 else "runs/gdata", 128, n, seed=0, workers=w)
    next(s)
    next(s)
    t, k = time.time(), 0
    while time.time() - t < 10:
        next(s)
        k += 1
    print("workers", w, "batch", n, "pairs/s", round(k * n / (time.time() - t)), flush=True)
