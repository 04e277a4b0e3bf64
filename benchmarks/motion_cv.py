"""Cross-validated audio->lips model on the training clips (never the eval set): the development loop for the
motion model.

Clips are grouped by person (the dataset's persons.json from `parla prepare`: face clusters, each named source's
clips joined: grid, lrs2, pcavs, ...; without it by source) and the groups split into folds, so every held-out clip
comes from a speaker and recording chain the fold's model has not seen, as the eval videos do. The summary is
given over all held-out clips and per corpus (`by_corpus`: the named sources of the original set, "named", apart
from the news clips, "lrwar"). Per held-out clip:
the correlation of the predicted with the real mouth opening (at lag 0 and at the best lag within +-6 frames;
positive lag = the prediction is late), and the landmark-space self-reenactment error: the first frame's landmarks
driven by the prediction (the pipeline's `lip_motion`, no head pose, no rendering) against the real landmarks, with
`parla eval reenact`'s mouth landmark distance, at several output scales.

    python benchmarks/motion_cv.py --data runs/data --out runs/cv/base [--steps 600] [--set key=value ...]

`--set` overrides MotionTrainConfig fields (e.g. --set lookahead=16).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from parla.training.persons import corpus

SCALES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def source(name: str) -> str:
    return name.split("_")[0]


def folds(clips, k: int, persons: dict[str, int] | None = None) -> list[list[int]]:
    """Person groups (persons.json: face clusters joined with named sources) or, without them, source groups,
    assigned greedily (largest first) to the fold with the fewest frames."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        key = f"person{persons[c.name]}" if persons is not None and c.name in persons else source(c.name)
        groups.setdefault(key, []).append(i)
    out, size = [[] for _ in range(k)], np.zeros(k)
    for g in sorted(groups.values(), key=lambda g: -sum(len(clips[i].coeffs) for i in g)):
        j = int(np.argmin(size))
        out[j] += g
        size[j] += sum(len(clips[i].coeffs) for i in g)
    return out


def lagged_corr(p: np.ndarray, r: np.ndarray, max_lag: int = 6) -> dict[int, float]:
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        x = p[max(0, lag) : len(p) + min(0, lag)]
        y = r[max(0, -lag) : len(r) + min(0, -lag)]
        ok = ~np.isnan(y) & ~np.isnan(x)
        if ok.sum() > 10 and x[ok].std() > 0 and y[ok].std() > 0:
            out[lag] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return out


def mouth_width(lms: np.ndarray) -> np.ndarray:
    """Mouth-corner distance (48-54) in units of the inter-ocular distance."""
    from parla.face.landmarks import interocular

    return np.linalg.norm(lms[:, 54] - lms[:, 48], axis=-1) / interocular(lms)


def closing_settings(closing: str) -> dict:
    """A ``--closing`` spec as MotionSettings fields: none, pause (every silent frame), pause:S (silences of at least
    S seconds), quiet:S (the same, below the absolute silence level only)."""
    kind, _, seconds = closing.partition(":")
    return {"close_pauses": kind != "none", "min_pause_s": float(seconds or 0), "quiet_pauses": kind == "quiet"}


def evaluate_clip(
    run_lips,
    norm,
    clip,
    raw: dict,
    basis,
    silence_hold_s: float,
    mc,
    closing: str = "pause",
    scales=SCALES,
    lookahead_frames: int = 0,
    lead_s: float = 0.0,
    smooth: tuple[int, ...] = (),
) -> dict:
    """Landmark-space evaluation of one held-out clip, its lips driven through the runtime's synthesizer, which
    looks ``lookahead_frames`` video frames ahead (a file's or a TTS reply's look-ahead; 0: a microphone)."""
    from dataclasses import replace as dc_replace

    from parla.edge.synth import MotionSettings, MotionSynth
    from parla.face.landmarks import mouth_opening
    from parla.metrics.reenact import mouth_lmd
    from parla.modelfolder import ModelFolder

    shipped = MotionSettings.from_folder(ModelFolder())
    lms = np.where(raw["valid"][:, None, None], raw["landmarks"].astype(np.float64), np.nan)
    first = int(np.flatnonzero(raw["valid"])[0])
    lms = lms[first:]
    n = len(lms)
    row = {"clip": clip.name, "frames": n}
    real_open = mouth_opening(lms)
    pad = np.repeat(clip.mel[-1:], mc.lookahead + 8 + (lookahead_frames + 1) * int(100 / clip.fps), 0)  # the end
    for s in scales:
        settings = dc_replace(
            shipped,
            mel_mean=norm[0],
            mel_std=norm[1],
            articulation=s,
            silence_hold_s=silence_hold_s,
            basis=basis,
            lookahead=mc.lookahead,
            receptive_field=mc.receptive_field,
            lead_s=lead_s,
            **closing_settings(closing),
        )
        synth = MotionSynth(settings, run_lips, fps=clip.fps, lookahead_frames=lookahead_frames)
        fms = synth.push_mel(np.concatenate([clip.mel, pad]))[first : first + n]
        coeffs, close = np.stack([f.coeffs for f in fms]), np.array([(f.mouth_close, f.mouth_rest) for f in fms])
        drv = np.stack([basis.drive(lms[0], coeffs[t], np.zeros(6), 0.0, *close[t]) for t in range(n)])
        row[f"lmd_x{s:g}"] = mouth_lmd(drv, lms)
        if s == 1.0:
            cs = lagged_corr(mouth_opening(drv), real_open)
            row["width_corr0"] = lagged_corr(mouth_width(drv), mouth_width(lms), 0).get(0)
            # the net alone (its standardised output decoded, before the synthesizer's gains, pauses and rest)
            k = basis.n_components
            raw = np.stack([basis.drive(lms[0], f.z[:k] * basis.stds, np.zeros(6), 0.0, 0.0) for f in fms])
            row["net_corr0"] = lagged_corr(mouth_opening(raw), real_open, 0).get(0)
            row["corr0"] = cs.get(0)
            # mouth open while voiced over open while not (the eval report's mouth v/s, in landmark space), for the
            # driven mouth and the real one
            voiced = np.array([f.voiced for f in fms])
            for name, o in (("vs", mouth_opening(drv)), ("vs_real", real_open)):
                ok = ~np.isnan(o)
                v, q = o[ok & voiced], o[ok & ~voiced]
                row[name] = float(v.mean() / max(q.mean(), 1e-3)) if len(v) > 5 and len(q) > 5 else None
            row["best_lag"] = max(cs, key=cs.get) if cs else None
            row["corr_best"] = cs[row["best_lag"]] if cs else None
            for taps in smooth:  # experiment: the synthesizer's coefficients through a centred moving average
                kern = np.ones(taps) / taps
                sm = np.stack([np.convolve(np.pad(coeffs[:, j], taps // 2, mode="edge"), kern, "valid")
                               for j in range(coeffs.shape[1])], 1)  # fmt: skip
                d = np.stack([basis.drive(lms[0], sm[t], np.zeros(6), 0.0, *close[t]) for t in range(n)])
                row[f"corr0_sm{taps}"] = lagged_corr(mouth_opening(d), real_open, 0).get(0)
                row[f"width_corr0_sm{taps}"] = lagged_corr(mouth_width(d), mouth_width(lms), 0).get(0)
    row["lmd_still"] = mouth_lmd(np.repeat(lms[:1], n, 0), lms)
    return row


def summarize(rows: list[dict], scales=SCALES) -> dict:
    still = float(np.mean([r["lmd_still"] for r in rows]))
    out: dict = {"clips": len(rows), "lmd_still": still}
    smoothed = sorted({k for r in rows for k in r if "_sm" in k})
    for key in ("corr0", "net_corr0", "width_corr0", "best_lag", "vs", "vs_real", *smoothed):  # no value: aside
        out[f"{key}_median"] = float(np.nanmedian([np.nan if r.get(key) is None else r[key] for r in rows]))
    for s in scales:
        lmd = float(np.mean([r[f"lmd_x{s:g}"] for r in rows]))
        out[f"improvement_x{s:g}"] = 1 - lmd / still
    return out


def overrides(pairs: list[str], cls) -> dict:
    """key=value strings -> the dataclass's field types (bool: true/false; tuples: comma-separated ints)."""
    out = {}
    for kv in pairs:
        k, v = kv.split("=", 1)
        default = getattr(cls(), k)
        if isinstance(default, bool):
            out[k] = v.lower() == "true"
        elif isinstance(default, tuple):
            out[k] = tuple(int(x) for x in v.split(",") if x)
        else:
            out[k] = type(default)(v)
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--set", nargs="*", default=[], help="MotionTrainConfig overrides, key=value")
    ap.add_argument("--net", nargs="*", default=[], help="LipNetConfig overrides, key=value (dilations=1,2,4)")
    ap.add_argument("--seeds", type=int, default=1, help="nets per fold, their outputs averaged (an ensemble)")
    ap.add_argument("--silence-hold", type=float, default=1.0)
    ap.add_argument("--lookahead", type=int, default=8, help="mel frames of look-ahead of the net")
    ap.add_argument(
        "--eval-phonemes",
        nargs="*",
        default=[],
        help="phoneme features of the held-out clips, one evaluation each (default: the first trained on); the "
        "summary is the first's, by_features has them all",
    )
    ap.add_argument("--phones", help="experiment: a folder of benchmarks/phone_features.py tracks, as extra inputs")
    ap.add_argument("--cmvn", action="store_true", help="experiment: each clip's mel mean removed (offline only)")
    ap.add_argument("--no-pause-close", action="store_true", help="no lip closure in level-detected pauses")
    ap.add_argument("--scales", nargs="*", type=float, default=list(SCALES), help="output scales of the LMD gain")
    ap.add_argument(
        "--closing",
        nargs="*",
        help="synthesizer pause closings to evaluate, each on every held-out clip (see closing_settings); "
        "default: pause, or none with --no-pause-close",
    )
    ap.add_argument(
        "--leads",
        nargs="*",
        type=float,
        default=[0.0],
        help="synthesizer leads (s: a frame shows the lips the net reads this much later), each evaluated",
    )
    ap.add_argument(
        "--smooth",
        nargs="*",
        type=int,
        default=[],
        help="experiment: also score the coefficients through a centred "
        "moving average of each of these lengths (frames)",
    )
    ap.add_argument("--no-rest", action="store_true", help="drive the first frame's mouth as it is (no rest_offset)")
    return ap.parse_args()


def main() -> None:
    args = parse_args()

    import torch

    from parla.edge.synth import FILE_LOOKAHEAD_FRAMES
    from parla.face.expression import ExpressionBasis
    from parla.models.lips import LipNetConfig, ensemble
    from parla.training.basis import fit_rest, load_clip
    from parla.training.motion import MotionTrainConfig, build, fit

    torch.set_num_threads(2)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tc = replace(MotionTrainConfig(steps=args.steps), **overrides(args.set, MotionTrainConfig))
    basis = ExpressionBasis.load(data / "basis.npz")
    clips, _ = build(data, basis, tc.phonemes, tc.phoneme_outputs)
    specs = args.eval_phonemes or [tc.phonemes.split("+")[0]]
    closings = args.closing or (["none"] if args.no_pause_close else ["pause"])
    scales = tuple(args.scales)
    trained = dict(zip(tc.phonemes.split("+"), zip(*[c.variants for c in clips], strict=True), strict=True))
    eval_mels = {  # per evaluated front-end: the held-out clips' inputs
        spec: [v for v in trained[spec]]
        if spec in trained
        else [c.mel for c in build(data, basis, spec, tc.phoneme_outputs)[0]]
        for spec in specs
    }
    if args.cmvn:
        grand = np.concatenate([c.mel for c in clips]).mean(0)
        for c in clips:
            c.mel = c.mel - c.mel.mean(0) + grand
    extra = 0
    if args.phones:
        for c in clips:
            ph = np.load(Path(args.phones) / f"{c.name}.npy")
            c.mel = np.concatenate([c.mel, ph[: len(c.mel)]], 1)
            extra = ph.shape[1]
    extra += clips[0].mel.shape[1] - 80 - extra
    mc = LipNetConfig(
        n_mels=80 + extra,
        n_coeffs=basis.n_components,
        lookahead=args.lookahead,
        closure=tc.closure,
        **overrides(args.net, LipNetConfig),
    )
    raws = {c.name: load_clip(data / "clips" / f"{c.name}.npz") for c in clips}
    rows, t0 = [], time.time()
    from parla.training.persons import load_groups

    persons = load_groups(data)
    for k, held in enumerate(folds(clips, args.folds, persons)):
        rest = [i for i in range(len(clips)) if i not in held]
        rng = np.random.default_rng(tc.seed + k)
        rng.shuffle(rest)
        n_val = max(1, int(round(tc.val_fraction * len(rest))))
        val, trn = [clips[i] for i in rest[:n_val]], [clips[i] for i in rest[n_val:]]
        net, norm, metrics = fit(trn, val, basis, tc, rng=rng, mc=mc)
        nets = [net] + [
            fit(
                trn,
                val,
                basis,
                replace(tc, seed=tc.seed + 1000 * j),
                rng=np.random.default_rng(tc.seed + k + 1000 * j),
                mc=mc,
            )[0]
            for j in range(1, args.seeds)
        ]
        fold_basis = copy.deepcopy(basis)
        fold_basis.meta.pop("open_direction", None)
        if not args.no_rest:
            fold_basis.meta.update(
                fit_rest([raws[c.name]["landmarks"][raws[c.name]["valid"]] for c in trn + val], basis)
            )

        lips = ensemble(nets)  # as `parla train motion --members` ships them

        def run_lips(window: np.ndarray, lips=lips) -> np.ndarray:
            with torch.no_grad():
                return lips(torch.from_numpy(window)).numpy()

        for i in held:
            for spec, mels in eval_mels.items():
                c = dataclasses.replace(clips[i], mel=mels[i])
                # audio known ahead (offline features) gets the runtime's file look-ahead, a stream none
                la = FILE_LOOKAHEAD_FRAMES if spec == "offline" else 0
                for closing in closings:
                    for lead in args.leads:
                        raw = raws[c.name]
                        settings = (args.silence_hold, mc, closing, scales, la, lead, tuple(args.smooth))
                        row = evaluate_clip(run_lips, norm, c, raw, fold_basis, *settings)
                        key = spec if len(closings) == 1 else f"{spec}|{closing}"
                        key += f"|lead {lead:g}" if len(args.leads) > 1 else ""
                        rows.append({"fold": k, "features": key, "closing": closing, "lead_s": lead, **row})
        print(f"fold {k}: {len(held)} clips, inner val {metrics}, {time.time() - t0:.0f} s", flush=True)
    write_result(out, rows, tc, scales, persons is not None)


def write_result(out: Path, rows: list[dict], tc, scales, by_person: bool) -> None:
    keys = list(dict.fromkeys(r["features"] for r in rows))
    by = {key: summarize([r for r in rows if r["features"] == key], scales) for key in keys}
    # the same held-out figures per corpus: new data must help the original sources, not only add easy clips
    by_corpus = {
        f"{key}|{name}": summarize(sel, scales)
        for key in keys
        for name in sorted({corpus(r["clip"]) for r in rows})
        if (sel := [r for r in rows if r["features"] == key and corpus(r["clip"]) == name])
    }
    print(json.dumps({**by, **by_corpus}, indent=1))
    result = {
        "train": asdict(tc),
        "groups": "persons.json" if by_person else "source prefix",
        "summary": by[keys[0]],
        "by_features": by,
        "by_corpus": by_corpus,
        "clips": rows,
    }
    (out / "cv.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
