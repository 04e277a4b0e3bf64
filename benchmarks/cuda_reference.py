"""The refiner on the torch reference path, on whatever torch device is given (issue 5: "torch (the FP32/BF16
reference, CUDA when present)"). Times one single-frame call (batch 1, the streaming case) and a batch of 16
(offline rendering) of the bundled teacher and student, FP32 and BF16 autocast, and the BF16 error vs FP32.

    python benchmarks/cuda_reference.py --device cuda --out benchmarks/results/cuda_reference/cuda_reference.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def _time(fn, x, repeats: int, sync) -> list[float]:
    for _ in range(10):
        fn(x)
    sync()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        sync()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> int:
    import torch

    from parla.modelfolder import load_weights
    from parla.models.refiner import Refiner, RefinerConfig, edge_module

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/cuda_reference/cuda_reference.json")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    root = Path(__file__).resolve().parents[1] / "parla" / "assets" / "default"
    config = json.loads((root / "config.json").read_text())
    nets = {
        "teacher": (config["refiner"], "refiner.safetensors"),
        "student": (config["student"]["refiner"], "student.safetensors"),
    }
    rows = []
    torch.backends.cudnn.benchmark = True
    for name, (cfg_dict, weights) in nets.items():
        cfg = RefinerConfig.from_dict(cfg_dict)
        g = Refiner(cfg).eval()
        load_weights(g, root / weights)
        m = edge_module(g).to(dev)
        for batch in (1, 16):
            x = torch.rand(batch, 6 + cfg.cond, cfg.res, cfg.res, device=dev) * 2 - 1
            with torch.no_grad():
                ref = m(x)
                for precision in ("fp32", "bf16"):

                    def run(t, p=precision, m=m):
                        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=p == "bf16"):
                            return m(t)

                    ms = _time(run, x, args.repeats, sync)
                    err = float((run(x).float() - ref).abs().max())
                    rows.append(
                        {
                            "net": name,
                            "precision": precision,
                            "batch": batch,
                            "latency_ms": {q: round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)},
                            "frames_per_s": round(batch * 1e3 / float(np.median(ms)), 1),
                            "max_abs_error_vs_fp32": round(err, 5),
                        }
                    )
                    print(rows[-1], flush=True)
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    report = {
        "device": device,
        "torch": torch.__version__,
        "note": "refiner forward only (the per-frame network), inputs on the device, synchronised wall time",
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
