"""Issue 3: does the refiner's residual + mask output (at 128², composed onto the full-resolution warp) beat a
full-resolution output (the network at 256², painting every pixel) at equal cost?

Both nets are trained by the same recipe (`train_teacher`, reconstruction losses only, same steps, seed and
pairs) and scored on self-reenactment pairs of the eval videos (never trained on): PSNR / SSIM against the real
target crop, and sharpness (variance of the Laplacian) relative to the target's.

    python benchmarks/refiner_mode.py --data runs/data --steps 600 --out benchmarks/results/refiner_mode
    # or: --phase train --device cuda --workers 12 on a GPU machine, then --phase score here
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Equal MACs: halving every width quarters the cost per pixel, doubling the resolution quadruples the pixels.
ARMS = {
    "residual_mask_128": {"res": 128, "channels": (16, 32, 64, 128), "mode": "residual_mask"},
    "full_256": {"res": 256, "channels": (8, 16, 32, 64), "mode": "full"},
}


def sharpness(img: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def score(run: Path, pairs) -> dict:
    import torch

    from parla.edge.render import compose
    from parla.export.api import load_checkpoint
    from parla.export.parity import latency_ms, psnr, ssim, torch_reference

    ck = load_checkpoint(run)
    x = pairs[ck.cfg.res]
    y = torch_reference(ck.module, x.x)
    outs = [compose(w, xx, yy, ck.cfg.mode) for w, xx, yy in zip(x.warped, x.x, y, strict=True)]
    from parla.models.macs import count_macs

    with torch.no_grad():
        ms = latency_ms(lambda a: ck.module(torch.from_numpy(a)), x.x[:1])
    return {
        "macs": count_macs(ck.module, torch.from_numpy(x.x[:1])),
        "torch_cpu_ms": round(ms, 2),
        "psnr": float(np.mean([psnr(o, t) for o, t in zip(outs, x.target, strict=True)])),
        "ssim": float(np.mean([ssim(o, t) for o, t in zip(outs, x.target, strict=True)])),
        "sharpness_ratio": float(
            np.median([sharpness(o) / max(sharpness(t), 1e-6) for o, t in zip(outs, x.target, strict=True)])
        ),
        "warp_psnr": float(np.mean([psnr(w, t) for w, t in zip(x.warped, x.target, strict=True)])),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument(
        "--phase",
        choices=["all", "train", "score"],
        default="all",
        help="train on one machine (e.g. a lent GPU) and score on another (needs ../shared/data/eval)",
    )
    ap.add_argument("--out", default="benchmarks/results/refiner_mode")
    args = ap.parse_args()

    from parla.models.refiner import RefinerConfig
    from parla.training.teacher import TeacherTrainConfig, train_teacher

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    if args.phase in ("all", "train"):
        for name, arm in ARMS.items():
            t = time.time()
            tc = TeacherTrainConfig(
                steps=args.steps, batch=args.batch, gan_start=10**9, ckpt_every=args.steps, sample_every=10**9
            )
            train_teacher(
                args.data,
                out / name,
                refiner=RefinerConfig(**arm),
                train=tc,
                show=False,
                device=args.device,
                workers=args.workers,
            )
            times[name] = round(time.time() - t, 1)
            print(name, "trained in", times[name], "s", flush=True)
        (out / "train_times.json").write_text(
            json.dumps({"device": args.device, "steps": args.steps, "batch": args.batch, "seconds": times}) + "\n"
        )
    if args.phase == "train":
        return 0
    from parla.export.api import PARITY_VIDEOS
    from parla.quantization.calibration import from_dataset, prepared

    with prepared(PARITY_VIDEOS, 12, show=False) as eval_data:
        pairs = {r: from_dataset(eval_data, args.pairs, r, seed=5) for r in (128, 256)}
    trained = json.loads((out / "train_times.json").read_text())
    rows = {
        name: {**score(out / name, pairs), **arm, "train_s": trained["seconds"][name]} for name, arm in ARMS.items()
    }
    for name, row in rows.items():
        print(name, row, flush=True)
    report = {
        "steps": trained["steps"],
        "batch": trained["batch"],
        "trained_on": trained["device"],
        "pairs": f"{args.pairs} self-reenactment pairs of the eval videos",
        "arms": rows,
    }
    (out / "refiner_mode.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
