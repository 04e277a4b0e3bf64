"""How much of the mouth opening can a linear model read from each audio front-end? Ridge regression from the
inputs at ±200 ms (5 taps, 100 ms apart) to each video frame's real inner-lip gap (the clip's mean removed), in the
source-held-out folds of benchmarks/motion_cv.py; median correlation over held-out clips. A check of the features,
not of the lips net.

    python benchmarks/ridge_features.py --phonemes offline
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from motion_cv import folds  # noqa: E402

TAPS = (-20, -10, 0, 10, 20)  # mel frames around each video frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--phonemes", default="offline", help="phoneme features (see MotionTrainConfig.phonemes)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--ridge", type=float, default=1000.0)
    args = ap.parse_args()

    from parla.face.expression import ExpressionBasis
    from parla.face.landmarks import mouth_opening
    from parla.training.basis import load_clip
    from parla.training.motion import build

    data = Path(args.data)
    clips, _ = build(data, ExpressionBasis.load(data / "basis.npz"), args.phonemes)
    gaps = []
    for c in clips:
        raw = load_clip(data / "clips" / f"{c.name}.npz")
        g = np.full(len(raw["valid"]), np.nan)
        g[raw["valid"]] = mouth_opening(raw["landmarks"][raw["valid"]].astype(np.float64))
        gaps.append(g - np.nanmean(g))

    def inputs(c, cols: slice) -> np.ndarray:
        m = c.mel[:, cols]
        return np.concatenate([m[np.clip(c.mel_index + t, 0, len(m) - 1)] for t in TAPS], 1)

    for name, cols in (("log-mel", slice(0, 80)), ("phonemes", slice(80, None)), ("both", slice(None))):
        if name != "log-mel" and clips[0].mel.shape[1] <= 80:
            continue
        corrs = []
        for held in folds(clips, args.folds):
            train = [i for i in range(len(clips)) if i not in held]
            x = np.concatenate([inputs(clips[i], cols) for i in train])
            y = np.concatenate([gaps[i] for i in train])
            ok = ~np.isnan(y)
            mu, sd = x[ok].mean(0), x[ok].std(0) + 1e-3
            xn = (x[ok] - mu) / sd
            w = np.linalg.solve(xn.T @ xn + args.ridge * np.eye(xn.shape[1]), xn.T @ y[ok])
            for i in held:
                p, t = ((inputs(clips[i], cols) - mu) / sd) @ w, gaps[i]
                o = ~np.isnan(t)
                if o.sum() > 10:
                    corrs.append(np.corrcoef(p[o], t[o])[0, 1])
        print(f"{name:9s} median held-out correlation {np.median(corrs):.3f} ({len(corrs)} clips)")


if __name__ == "__main__":
    main()
