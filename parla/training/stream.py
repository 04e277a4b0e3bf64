"""Worker side of ``parla.training.data.batches``: one PairSampler per DataLoader worker process, images sent as
uint8 (4x less to copy between processes; ``to_float`` restores them exactly). A module of its own so that spawned
workers can import it (torch is needed here, not by ``data``)."""

from __future__ import annotations

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
            yield {k: (np.rint((v + 1.0) * 127.5).astype(np.uint8) if k in IMAGE_KEYS else v)
                   for k, v in sampler.batch(self.n).items()}
