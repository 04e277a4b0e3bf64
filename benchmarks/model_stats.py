"""Parameter counts and MACs per frame of a model bundle (the figures of the model card).

python benchmarks/model_stats.py [MODEL_DIR]
"""

from __future__ import annotations

import sys

import torch

from parla.modelfolder import ModelFolder
from parla.models.macs import count_macs


def main() -> int:
    folder = ModelFolder(sys.argv[1] if len(sys.argv) > 1 else None)
    refiner, cfg = folder.refiner("teacher")
    lips, _ = folder.lipnet()
    r = cfg.res
    x = torch.zeros(1, 3, r, r)
    refiner_macs = count_macs(refiner, x, x, torch.zeros(1, cfg.cond, r, r))
    inputs = int(folder.config["motion"].get("n_mels", 80))  # log-mel, and phoneme features where the net reads them
    mel = torch.zeros(1, inputs, 400)  # 4 s of mel-rate inputs
    motion_macs = count_macs(lips, mel) / 400 * 4  # 4 mel frames (40 ms) per video frame at 25 fps
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(
        f"refiner: {n(refiner) / 1e6:.2f} M parameters, {refiner_macs / 1e9:.2f} GMAC per frame "
        f"at {r}x{r}, channels {cfg.channels}"
    )
    print(f"lips:    {n(lips) / 1e6:.3f} M parameters, {motion_macs / 1e6:.1f} MMAC per frame at 25 fps ({inputs} in)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
