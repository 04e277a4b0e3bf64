"""Which audio features make a lip-sync *probe* that sees real lips (issue 14, point 3)?

The shipped probe (``parla.metrics.sync_probe``) is a ridge regression from +-0.2 s of log-mel to the mouth opening,
fitted on the training clips. Real talking videos score a median sync confidence of 0.25 with it
(docs/metrics.md), generated ones 0.40+, because a mouth that follows loudness is what a log-mel probe predicts.
This script fits the same kind of probe on other features of the same audio and asks of each:

1. cross-validated correlation with the real mouth on the training clips, holding out whole sources;
2. on the eval set's **real** videos (never fitted on): sync confidence of the real clips, and of two controls
   (the video against another clip's audio; the first frame held still). A probe that sees lips scores the real
   clips high and the controls near 0.

    python benchmarks/probe_features.py --data runs/data --videos ../shared/data/eval/videos \
        --out benchmarks/results/probe_features
    python benchmarks/probe_features.py --score GENERATED.mp4 ... --out benchmarks/results/probe_features/NAME

The second form scores videos (their own audio track) with the probes the first wrote (``--probes``).

Needs ``parla prepare`` data with audio, and hama (the phoneme encoder) installed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from parla.metrics.sync_probe import PH_DIMS

RIDGES = (1e2, 1e3, 1e4, 1e5)


def source(name: str) -> str:
    return name.split("_")[0]


def raw_features(audio: np.ndarray, encoder) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel, phoneme-encoder state at the mel rate) of a clip."""
    from parla.audio.mel import log_mel
    from parla.audio.phonemes import phoneme_track

    mel = log_mel(audio)
    return mel, phoneme_track(audio, len(mel), "offline", encoder)


def clip_features(raw, fps: float, n_frames: int, pca: np.ndarray) -> dict[str, np.ndarray]:
    from parla.metrics.sync_probe import features, phoneme_features

    mel, ph = raw
    lm = features(None, fps, n_frames, mel=mel)
    pt = phoneme_features(ph, pca, fps, n_frames)  # the bundled phoneme probe's features
    return {"log-mel": lm, "phonemes": pt, "both": np.concatenate([lm, pt], 1)}


class Ridge:
    """Ridge fits over any subset of clips from per-clip Gram matrices (features standardised once, on all
    training frames: unsupervised statistics, no labels)."""

    def __init__(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
        x = np.concatenate(xs)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        zs = [(x - self.mean) / self.std for x in xs]
        self.g = [z.T @ z for z in zs]
        self.b = [z.T @ y for z, y in zip(zs, ys, strict=True)]

    def fit(self, clips: list[int], ridge: float) -> np.ndarray:
        g, b = sum(self.g[i] for i in clips), sum(self.b[i] for i in clips)
        return np.linalg.solve(g + ridge * np.eye(len(g)), b)

    def predict(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) @ w


def load_train(data: Path, encoder) -> tuple[list[dict], np.ndarray]:
    """The prepared training clips with speech: their features and mouth targets, and the phoneme PCA."""
    from parla.face.landmarks import mouth_opening
    from parla.metrics.av import mouth_target
    from parla.training.basis import load_clip

    train: list[dict] = []
    for path in sorted((data / "clips").glob("*.npz")):
        c = load_clip(path)
        if not bool(c["has_audio"]) or "audio" not in c or not len(c["audio"]):
            continue
        lms = np.where(c["valid"][:, None, None], c["landmarks"].astype(np.float64), np.nan)
        fps, n = float(c["fps"]), len(lms)
        y = mouth_target(mouth_opening(lms), fps)
        ok = ~np.isnan(y)
        if ok.sum() >= 20:
            raw = raw_features(c["audio"].astype(np.float32) / 32767, encoder)
            train.append({"name": path.stem, "raw": raw, "fps": fps, "n": n, "ok": ok, "y": y[ok]})
    allph = np.concatenate([c["raw"][1] for c in train])
    allph = allph - allph.mean(0)
    pca = np.linalg.svd(allph[:: max(1, len(allph) // 20000)], full_matrices=False)[2][:PH_DIMS].T
    for c in train:
        c["x"] = {k: v[c["ok"]] for k, v in clip_features(c["raw"], c["fps"], c["n"], pca).items()}
    return train, pca


def cross_validate(train: list[dict]) -> tuple[dict, dict]:
    """Per feature set: the median held-out correlation per ridge (whole sources held out), and the probe fitted
    on every clip with the best ridge."""
    sources = sorted({source(c["name"]) for c in train})
    cv: dict[str, dict[str, float]] = {}
    probes = {}
    for kind in train[0]["x"]:
        model = Ridge([c["x"][kind] for c in train], [c["y"] for c in train])
        cv[kind] = {}
        for ridge in RIDGES:
            corrs = []
            for s in sources:
                held = [i for i, c in enumerate(train) if source(c["name"]) == s]
                w = model.fit([i for i in range(len(train)) if i not in held], ridge)
                corrs += [float(np.corrcoef(model.predict(train[i]["x"][kind], w), train[i]["y"])[0, 1]) for i in held]
            cv[kind][f"{ridge:g}"] = float(np.median(corrs))
        print(kind, cv[kind], flush=True)
        ridge = float(max(cv[kind], key=cv[kind].get))
        probes[kind] = (ridge, model, model.fit(list(range(len(train))), ridge))
    return cv, probes


def score_real(videos: str, probes: dict, pca: np.ndarray, encoder) -> list[dict]:
    """Each probe on each real eval video: sync confidence and offset of the real clip and of the controls."""
    from parla.face.landmarks import mouth_opening
    from parla.face.tracks import clip_audio, list_videos, track_video
    from parla.metrics.av import lip_sync

    real = []
    for v in list_videos(videos):
        audio, _ = clip_audio(v, None)
        if audio is None:
            continue
        track = track_video(v)
        mouth = mouth_opening(track.landmarks)
        if not np.isnan(mouth).all():
            feats = clip_features(raw_features(audio, encoder), track.fps, track.n_frames, pca)
            real.append((v.name, feats, track.fps, mouth))
    rows = []
    for i, (name, feats, fps, mouth) in enumerate(real):
        other = real[(i + 1) % len(real)][1]
        first = mouth[np.flatnonzero(~np.isnan(mouth))[0]]
        still = np.where(np.isnan(mouth), np.nan, first) + np.random.default_rng(0).normal(0, 1e-4, len(mouth))
        for kind, (_, model, w) in probes.items():
            pred, pred_other = model.predict(feats[kind], w), model.predict(other[kind], w)
            m = min(len(mouth), len(pred_other))
            row = {"video": name, "probe": kind}
            for label, (mo, p) in {
                "real": (mouth, pred),
                "swapped": (mouth[:m], pred_other[:m]),
                "still": (still, pred),
            }.items():
                off, conf, _ = lip_sync(mo, p, fps)
                row[f"{label}_conf"], row[f"{label}_offset"] = conf, off
            rows.append(row)
    return rows


def summarize(rows: list[dict], cv: dict, probes: dict) -> dict:
    def med(values) -> float:
        return float(np.nanmedian([np.nan if v is None else v for v in values]))

    summary = {}
    for kind, (ridge, _, _) in probes.items():
        r = [x for x in rows if x["probe"] == kind]
        summary[kind] = {
            "ridge": ridge,
            "cv_source_held_out_median": cv[kind][f"{ridge:g}"],
            **{f"{label}_conf_median": med(x[f"{label}_conf"] for x in r) for label in ("real", "swapped", "still")},
            "real_offset_median_abs": med(None if x["real_offset"] is None else abs(x["real_offset"]) for x in r),
        }
    return summary


def score_videos(paths: list[str], probes_file: Path, encoder) -> list[dict]:
    """Sync confidence and offset of each video under each saved probe."""
    from parla.face.landmarks import mouth_opening
    from parla.face.tracks import clip_audio, track_video
    from parla.metrics.av import lip_sync

    with np.load(probes_file) as z:
        saved = {k: z[k] for k in z.files}
    kinds = sorted({k.rsplit("_", 1)[0] for k in saved if k != "pca"})
    rows = []
    for path in paths:
        audio, _ = clip_audio(Path(path), None)
        track = track_video(path)
        mouth = mouth_opening(track.landmarks)
        feats = clip_features(raw_features(audio, encoder), track.fps, track.n_frames, saved["pca"])
        row: dict = {"video": str(path)}
        for kind in kinds:
            pred = ((feats[kind] - saved[f"{kind}_mean"]) / saved[f"{kind}_std"]) @ saved[f"{kind}_w"]
            row[f"{kind}_offset"], row[f"{kind}_conf"], _ = lip_sync(mouth, pred, track.fps)
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--videos", default="../shared/data/eval/videos")
    ap.add_argument("--out", required=True)
    ap.add_argument("--score", nargs="*", help="videos to score with saved probes instead of fitting them")
    ap.add_argument("--probes", default="benchmarks/results/probe_features/probes.npz")
    args = ap.parse_args()

    from parla.audio.phonemes import PhonemeEncoder

    t0 = time.time()
    encoder = PhonemeEncoder()
    out = Path(args.out)
    if args.score:
        rows = score_videos(args.score, Path(args.probes), encoder)
        kinds = [k[: -len("_conf")] for k in rows[0] if k.endswith("_conf")]
        med = {
            k: float(np.nanmedian([np.nan if r[f"{k}_conf"] is None else r[f"{k}_conf"] for r in rows])) for k in kinds
        }
        print(json.dumps(med, indent=1))
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps({"median_conf": med, "rows": rows}, indent=1) + "\n")
        return
    train, pca = load_train(Path(args.data), encoder)
    print(f"{len(train)} training clips, {time.time() - t0:.0f} s", flush=True)
    cv, probes = cross_validate(train)
    rows = score_real(args.videos, probes, pca, encoder)
    summary = summarize(rows, cv, probes)
    print(json.dumps(summary, indent=1))
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe_features.json").write_text(json.dumps({"summary": summary, "cv": cv, "rows": rows}, indent=1) + "\n")
    np.savez(
        out / "probes.npz",
        pca=pca,
        **{f"{k}_{p}": v for k, (_, m, w) in probes.items() for p, v in (("mean", m.mean), ("std", m.std), ("w", w))},
    )
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
