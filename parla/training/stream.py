"""Training batches (``batches``), drawn in this process or by DataLoader workers: one PairSampler per worker
process, images sent as
uint8 (4x less to copy between processes; ``to_float`` restores them exactly). A module of its own so that spawned
workers can import it (torch is needed here, not by ``data``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from parla.training.data import IMAGE_KEYS, PairSampler, load_clips


class PairStream(torch.utils.data.IterableDataset):
    def __init__(self, data_dir: str, res: int, n: int, seed: int) -> None:
        super().__init__()
        self.data_dir, self.res, self.n, self.seed = data_dir, res, n, seed

    def __iter__(self):
        import cv2

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        info = torch.utils.data.get_worker_info()
        sampler = PairSampler(load_clips(self.data_dir), self.res, seed=self.seed * 1009 + (info.id if info else 0))
        while True:
            yield {
                k: (np.rint((v + 1.0) * 127.5).astype(np.uint8) if k in IMAGE_KEYS else v)
                for k, v in sampler.batch(self.n).items()
            }


def batches(data_dir: str | Path, res: int, n: int, *, seed: int, workers: int = 0):
    """Endless batches of ``n`` pairs. ``workers`` > 0 draws them in that many processes (each with its own seed)
    so that a GPU is not left waiting on the host warp (their images come as uint8, see ``to_float``); 0 draws
    them in this process, deterministically."""
    if workers <= 0:
        sampler = PairSampler(load_clips(data_dir), res, seed=seed)
        while True:
            yield sampler.batch(n)
    # Fresh (spawned) workers with one BLAS/OpenMP thread each: forked ones inherit a BLAS pool sized for the whole
    # machine, and 14 of them thrashing 16 cores drew 5 pairs/s each on the lent GPU machine instead of ~100.
    single = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in single}
    os.environ.update(single)
    try:
        loader = iter(
            torch.utils.data.DataLoader(
                PairStream(str(data_dir), res, n, seed),
                batch_size=None,
                num_workers=workers,
                prefetch_factor=4,
                persistent_workers=True,
                multiprocessing_context="spawn",
            )
        )
        first = next(loader)  # the workers start here, under the single-thread environment
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    yield {k: v.numpy() for k, v in first.items()}
    for b in loader:  # images stay uint8 here: the trainer restores [-1, 1] floats on its device
        yield {k: v.numpy() for k, v in b.items()}
