"""Issue 15, session 8: the same clip rendered with and without the lip copies (``parla.face.mouth``), same seed.

Per variant: the clip metrics of `parla eval gen` (sync confidence, identity distance, ΔE, mouth voiced/silent)
and how closely the rendered mouth follows the driving shape (the correlation of the driving landmarks' inner-lip
gap with the one detected in the written video).

    python benchmarks/lip_copies_ab.py PORTRAIT SPEECH [--seeds 0 1] [--out benchmarks/results/lip_copies_ab]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("portrait")
    ap.add_argument("speech")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import parla.edge.render as render
    import parla.face.expression as expression
    from parla.edge.avatar import animate
    from parla.export.parity import machine
    from parla.face.landmarks import mouth_opening
    from parla.face.tracks import track_video
    from parla.metrics.report import evaluate_clip, portrait_embedding

    emb, ref = portrait_embedding(args.portrait, with_reference=True)
    copies, drive = render.MouthCopy.all, expression.ExpressionBasis.drive
    driven: list[float] = []

    def logged(self, *a, **k):
        d = drive(self, *a, **k)
        driven.append(float(mouth_opening(d)))
        return d

    expression.ExpressionBasis.drive = logged
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant in ("without", "with"):
                render.MouthCopy.all = copies if variant == "with" else (lambda *a, **k: ())
                driven.clear()
                video = animate(args.portrait, args.speech, Path(tmp) / f"{variant}.mp4", backend="auto",
                                show=False, seed=seed)  # fmt: skip
                r = evaluate_clip(video, audio=args.speech, portrait_emb=emb, reference=ref)
                seen = mouth_opening(track_video(video).landmarks)
                drv = np.array(driven[-len(seen) :])
                ok = np.isfinite(seen)
                row = {"seed": seed, "copies": variant,
                       **{k: round(float(r[k]), 3) for k in ("sync_confidence", "identity_distance",
                                                             "delta_e_median", "mouth_activity_ratio")},
                       "driving_vs_seen_r": round(float(np.corrcoef(drv[ok], seen[ok])[0, 1]), 3)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine(), "portrait": args.portrait, "speech": args.speech, "rows": rows}
        (out / "lip_copies_ab.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
