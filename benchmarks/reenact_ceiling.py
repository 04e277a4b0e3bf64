"""How far can self-reenactment's mouth landmark distance (LMD) fall below the still first frame, whatever the
audio model? Ceilings measured on the training clips' own landmark tracks (no rendering, no eval data).

Arms, each scored with `parla eval reenact`'s mouth_lmd against the real track of every clip with speech:
- still: the first frame held (the baseline of issue 3's criterion);
- rest gap: the first frame with only its inner-lip gap moved to the rest opening (ExpressionBasis.rest_offset as
  shipped, fitted leaving the clip's source out), held;
- rest: the first frame moved to the estimated median mouth of its speaker and then to the rest opening
  (``fit_rest(..., shape=True)``, session 18, not shipped), held;
- oracle opening (and from the rest gap): the rest-corrected first frame driven by the clip's *real* gap along the
  opening direction (a perfect audio->opening model);
- oracle all: the lip-shape rest driven by all 12 *real* expression coefficients (a perfect audio->lips model);
- median frame: the clip's own frame closest to its median mouth shape, held (knows the future);
- opening r=R: from the shipped (gap-only) rest, an imperfect audio->opening model whose prediction correlates R
  with the real gap, at the real gap's amplitude (damped: R times it, the LMD-optimal amplitude; shape: from the
  lip-shape rest): the clip's standardised real gap mixed with another source's (a real mouth's movement, unrelated
  to this audio) as R z + sqrt(1 - R^2) w.

    python benchmarks/reenact_ceiling.py --data runs/data [--basis parla/assets/default/basis.npz]
        [--json benchmarks/results/motion_cv/ceiling.json]
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np

IMPERFECT = (0.5, 0.6, 0.7, 0.8, 0.9)  # the opening correlations of the imperfect arms


def imperfect_openings(lms, dev, w, direction, gap_rest, shape_rest) -> dict[str, float]:
    """The LMD of the "opening r=R" arms of one clip: ``dev`` its real gap from its median, ``w`` another mouth's
    standardised movement as long as the clip."""
    from parla.metrics.reenact import mouth_lmd

    z = (dev - dev.mean()) / max(dev.std(), 1e-9)
    out = {}
    for r in IMPERFECT:
        pred = dev.mean() + dev.std() * (r * z + np.sqrt(1 - r * r) * w)
        for arm, amp, basis in ((f"opening_r{r:g}", 1.0, gap_rest), (f"opening_r{r:g}_damped", r, gap_rest),
                                (f"opening_r{r:g}_shape", 1.0, shape_rest)):  # fmt: skip
            drv = np.stack([basis.drive(lms[0], (dev.mean() + amp * (x - dev.mean())) * direction, np.zeros(6), 0.0)
                            for x in pred])  # fmt: skip
            out[arm] = mouth_lmd(drv, lms)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--basis", help="the expression basis to drive (default: DATA/basis.npz; a model folder's)")
    ap.add_argument("--json")
    args = ap.parse_args()

    from parla.face.expression import ExpressionBasis
    from parla.face.landmarks import mouth_opening
    from parla.metrics.reenact import mouth_lmd, mouth_shape
    from parla.training.basis import clip_offsets, fit_rest, load_clip

    data = Path(args.data)
    basis = ExpressionBasis.load(args.basis or data / "basis.npz")
    tracks = {}
    for f in sorted((data / "clips").glob("*.npz")):
        c = load_clip(f)
        lms = c["landmarks"][c["valid"]].astype(np.float64)
        if len(lms) >= 10:
            tracks[f.stem] = (lms, bool(c["has_audio"]))
    source = {name: name.split("_")[0] for name in tracks}
    mean = basis.mean_shape.astype(np.float64)
    canonical = {name: clip_offsets(lms, mean) for name, (lms, _) in tracks.items()}  # (shapes, offsets)
    gaps = {name: mouth_opening(shapes) for name, (shapes, _) in canonical.items()}
    names = ("still", "rest_gap", "rest", "oracle_opening_gap", "oracle_opening", "oracle_all", "median_frame")
    arms: dict[str, list[float]] = {k: [] for k in names}
    spoken = [name for name in tracks if tracks[name][1]]
    zero = np.zeros(6)
    held_out: dict = {}  # source -> the bases with the rest fitted without that source: with the shape, gap only
    for name, (lms, speech) in tracks.items():
        if not speech:
            continue
        if source[name] not in held_out:
            b = copy.deepcopy(basis)
            b.meta.update(fit_rest([t for n, (t, _) in tracks.items() if source[n] != source[name]], basis, shape=True))
            g = copy.deepcopy(b)
            del g.meta["shape_shrink"], g.meta["shape_center"]
            held_out[source[name]] = b, g
        b, g = held_out[source[name]]
        n = len(lms)
        arms["still"].append(mouth_lmd(np.repeat(lms[:1], n, 0), lms))
        for arm, bb in (("rest_gap", g), ("rest", b)):
            rest = bb.drive(lms[0], np.zeros(b.n_components), zero, 0.0)
            arms[arm].append(mouth_lmd(np.repeat(rest[None], n, 0), lms))
        offsets, gap = canonical[name][1], gaps[name]
        direction = np.asarray(b.meta["open_direction"])
        for arm, bb in (("oracle_opening_gap", g), ("oracle_opening", b)):
            drv = np.stack([bb.drive(lms[0], (x - np.median(gap)) * direction, zero, 0.0) for x in gap])
            arms[arm].append(mouth_lmd(drv, lms))
        other = next(o for o in spoken[spoken.index(name) + 1 :] + spoken if source[o] != source[name])
        w = gaps[other]
        w = np.resize((w - w.mean()) / max(w.std(), 1e-9), n)  # another mouth's movement, as long as this clip
        for arm, value in imperfect_openings(lms, gap - np.median(gap), w, direction, g, b).items():
            arms.setdefault(arm, []).append(value)
        coeffs = basis.encode(offsets)
        drv = np.stack([b.drive(lms[0], c, zero, 0.0) for c in coeffs])
        arms["oracle_all"].append(mouth_lmd(drv, lms))
        shapes = mouth_shape(lms)
        k = int(np.argmin(np.linalg.norm(shapes - np.median(shapes, 0), axis=-1).mean(-1)))
        arms["median_frame"].append(mouth_lmd(np.repeat(lms[k : k + 1], n, 0), lms))
    still = float(np.mean(arms["still"]))
    summary = {k: {"lmd": float(np.mean(v)), "improvement": 1 - float(np.mean(v)) / still} for k, v in arms.items()}
    for k, v in summary.items():
        print(f"{k:20s} LMD {v['lmd']:.4f}  improvement over still {v['improvement']:+.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"clips": len(arms["still"]), "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
