"""Issue 3's quality evaluation: every eval portrait x a set of eval speech clips, animated by a model and
measured with `parla eval gen`; writes JSON and a Markdown table.

    python benchmarks/quality_eval.py --model parla/assets/default --out benchmarks/quality \
        [--speech s01_en s05_fr s06_zh] [--portraits p01 p02 ...]

Runs on CPU (about 30 s per clip on 2 cores). Uses ../shared/data/eval only for evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "data" / "eval"
DEFAULT_SPEECH = ("s01_en", "s05_fr", "s06_zh")


def pick(folder: Path, prefixes: list[str] | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".md")
    if not prefixes:
        return files
    return [p for p in files if any(p.name.startswith(x) for x in prefixes)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="benchmarks/quality")
    ap.add_argument("--speech", nargs="*", default=list(DEFAULT_SPEECH))
    ap.add_argument("--portraits", nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--net", choices=["teacher", "student"], default="teacher", help="which refiner of the model")
    ap.add_argument("--merge", nargs="*", default=None, help="merge these quality.json files instead of running")
    ap.add_argument(
        "--lookahead-frames",
        type=int,
        default=None,
        help="the synthesizer's look-ahead beyond the lips net's (default: animate's, for a file)",
    )
    args = ap.parse_args()
    if args.merge:
        return merge([Path(p) for p in args.merge], Path(args.out))

    from parla.edge.avatar import animate
    from parla.metrics.report import evaluate_generated, summarize

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    portraits, speech = pick(EVAL / "portraits", args.portraits), pick(EVAL / "speech", args.speech)
    rows, t0 = [], time.time()
    for s in speech:
        for p in portraits:
            with tempfile.TemporaryDirectory() as tmp:
                video = Path(tmp) / "gen.mp4"
                t = time.time()
                kw = {} if args.lookahead_frames is None else {"lookahead_frames": args.lookahead_frames}
                animate(p, s, video, model=args.model, seed=args.seed, net=args.net, backend="torch", show=False, **kw)
                seconds = time.time() - t
                sheet = out / "sheets" / f"{p.stem}__{s.stem}.png"
                sheet.parent.mkdir(parents=True, exist_ok=True)
                clip = evaluate_generated(video, portrait=p, audio=s, sheet=sheet)["clips"][0]
            clip.update(file=f"{p.stem} x {s.stem}", portrait=p.name, speech=s.name, render_s=seconds)
            rows.append(clip)
            print(
                f"{clip['file']}: sync {clip['sync_confidence']}, id {clip['identity_distance']}, {seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    report = {
        "model": str(args.model or "bundled"),
        "clips": rows,
        "summary": summarize(rows),
        "per_speech": {s.name: summarize([r for r in rows if r["speech"] == s.name]) for s in speech},
        "seconds": time.time() - t0,
    }
    from parla.metrics.report import write_report

    write_report(report, out / "quality.json")
    (out / "quality.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def merge(paths: list[Path], out: Path) -> int:
    """One report from several runs (e.g. two halves of the portraits run one after the other)."""
    from parla.metrics.report import summarize, write_report

    reports = [json.loads(p.read_text()) for p in paths]
    rows = [c for r in reports for c in r["clips"]]
    speech = sorted({c["speech"] for c in rows})
    report = {
        "model": reports[0]["model"],
        "clips": rows,
        "summary": summarize(rows),
        "per_speech": {s: summarize([c for c in rows if c["speech"] == s]) for s in speech},
        "seconds": sum(r["seconds"] for r in reports),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_report(report, out / "quality.json")
    (out / "quality.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    keys = [
        ("sync_confidence", "sync conf", "{:.3f}"),
        ("abs_sync_offset_frames", "|offset|", "{:.1f}"),
        ("mouth_activity_ratio", "mouth v/s", "{:.2f}"),
        ("mouth_open_silent", "open silent", "{:.3f}"),
        ("mouth_open_voiced", "open voiced", "{:.3f}"),
        ("identity_distance", "id dist", "{:.3f}"),
        ("blink_per_min", "blink/min", "{:.1f}"),
        ("spikes_total", "spikes", "{:d}"),
        ("detail_median", "detail", "{:.2f}"),
        ("detail_clip_min", "detail min clip", "{:.2f}"),
        ("delta_e_median", "ΔE", "{:.2f}"),
    ]
    lines = ["| speech | " + " | ".join(h for _, h, _ in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, s in list(report["per_speech"].items()) + [("all", report["summary"])]:
        cells = ["-" if s.get(k) is None else f.format(s[k]) for k, _, f in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    hm = report["summary"].get("head_motion") or {}
    lines.append("")
    lines.append("Head motion (medians): " + ", ".join(f"{k} {v:.2f}" for k, v in hm.items() if v is not None))
    lines.append(f"\n{len(report['clips'])} clips, {report['seconds'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
