"""The watermark detector's null distribution: what `parla verify` reads on real material that carries no mark.

Every real video of ../shared/data (eval/videos, train/videos, train/lrw_ar/videos) is read as `parla verify`
reads it (the same checkpoints and early stop), and every real photo (train/faces, eval/portraits) as an image.
For each, the strongest sync z of the video statistic (differences of frames half a turn apart) and of the image
statistic (single frames). A Gumbel law (the statistic is a maximum over shifts and scales) is fitted to each by
maximum likelihood; `parla.watermark.core.NULL_GUMBEL` holds the fit, and from it the threshold for a false
positive rate of 1e-6 and each reading's probability of a mark.

    python benchmarks/watermark_null.py --out benchmarks/results/watermark_null [--lrw-every 1]

Writes null.json (every reading, the fits, the thresholds, the largest readings) and null.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mov", ".mkv", ".webm", ".avi")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def gumbel_fit(x: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood Gumbel (location, scale): the scale solves beta = mean(x) - sum(x w) / sum(w),
    w = exp(-x / beta), by bisection."""
    x = np.asarray(x, np.float64)

    def gap(beta: float) -> float:  # zero at the ML scale; increasing in beta
        w = np.exp(-(x - x.min()) / beta)
        return beta - x.mean() + float((x * w).sum() / w.sum())

    lo, hi = 1e-3 * x.std(), 10 * x.std()
    for _ in range(200):  # bisection: the fixed-point iteration diverges on some samples
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    beta = 0.5 * (lo + hi)
    mu = float(-beta * np.log(np.mean(np.exp(-(x - x.min()) / beta))) + x.min())
    return mu, beta


def read_all(paths: list[Path]) -> list[dict]:
    from parla.progress import progress
    from parla.watermark import verify

    rows = []
    with progress(len(paths), "reading", unit="file") as bar:
        for p in paths:
            t = time.perf_counter()
            r = verify(p)
            secs = round(time.perf_counter() - t, 2)
            rows.append({"file": str(p.relative_to(DATA)), "found": r.found, "z_video": r.z_video,
                         "z_image": r.z_image, "frames": r.frames, "seconds": secs})  # fmt: skip
            bar.update(1)
    return rows


def summary(z: np.ndarray, kind: str) -> dict:
    from parla.watermark import core

    mu, beta = gumbel_fit(z)
    saved = core.NULL_GUMBEL[kind]
    core.NULL_GUMBEL[kind] = (mu, beta)
    try:
        thr = core.threshold(kind)
    finally:
        core.NULL_GUMBEL[kind] = saved
    q = np.sort(z)
    # the fit's tail against the sample's: the fitted survival at the sample's top readings
    tail = [
        {
            "z": round(float(v), 2),
            "empirical": round((len(q) - i) / len(q), 5),
            "fitted": float(-np.expm1(-np.exp(-(v - mu) / beta))),
        }  # fmt: skip
        for i, v in enumerate(q)
        if i >= len(q) - 5
    ]
    return {"n": int(len(z)), "median": round(float(np.median(z)), 2), "max": round(float(z.max()), 2),
            "gumbel": [round(float(mu), 3), round(float(beta), 3)], "threshold_fpr_1e-6": round(thr, 2),
            "tail": tail}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/watermark_null")
    ap.add_argument("--lrw-every", type=int, default=1, help="read every n-th lrw_ar clip (1: all 2,112)")
    args = ap.parse_args()
    from parla.export.parity import machine

    videos = [p for d in ("eval/videos", "train/videos") for p in sorted((DATA / d).iterdir())
              if p.suffix.lower() in VIDEO_SUFFIXES]  # fmt: skip
    videos += sorted((DATA / "train/lrw_ar/videos").glob("*.mp4"))[:: args.lrw_every]
    images = [p for d in ("train/faces", "eval/portraits") for p in sorted((DATA / d).rglob("*"))
              if p.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    t0 = time.time()
    vrows, irows = read_all(videos), read_all(images)
    zv = np.array([r["z_video"] for r in vrows if r["z_video"] > 0])
    zi = np.array([r["z_image"] for r in vrows + irows if r["z_image"] > 0])
    result = {
        "machine": machine(),
        "seconds": round(time.time() - t0),
        "videos": len(vrows),
        "images": len(irows),
        "found": sum(r["found"] for r in vrows + irows),
        "video": summary(zv, "video"),
        "image": summary(zi, "image"),
        "readings": vrows + irows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "null.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Watermark detector on real material ({result['machine']})",
        "",
        f"`python benchmarks/watermark_null.py` — {len(vrows)} real videos, {len(irows)} real photos; "
        f"found: {result['found']}.",
        "",
        "| statistic | readings | median z | max z | Gumbel (location, scale) | threshold z (FPR 1e-6) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("video", "image"):
        s = result[kind]
        lines.append(f"| {kind} | {s['n']} | {s['median']} | {s['max']} | {s['gumbel']} | {s['threshold_fpr_1e-6']} |")
    (out / "null.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
