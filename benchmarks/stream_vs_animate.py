"""Issue 5, acceptance 1: `parla stream PORTRAIT --audio SPEECH --sink file:OUT.mp4` (real-time pace, INT8 student
on the config's backend) against the offline `parla animate` (torch FP32 teacher) on the same clips, both measured
by `parla eval gen`. The offline figures come from quality_eval.py reports of the same model and clips: the default
teacher (`parla animate`) and the FP32 student (`parla animate --net student`, the same net the stream runs in INT8).

    python benchmarks/stream_vs_animate.py --portraits p01 p03 p07 p10 p13 p16 \
        --animate-report teacher=benchmarks/results/quality_teacher7250_18/quality.json \
        student=benchmarks/results/quality_student/quality.json --out benchmarks/results/stream_vs_animate
    # --reuse: keep the streamed measurements of an earlier run, recompute the comparison only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(k, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality_eval import DEFAULT_SPEECH, EVAL, pick  # noqa: E402

KEYS = (
    "sync_confidence",
    "sync_offset_frames",
    "mouth_activity_ratio",
    "identity_distance",
    "blink_per_min",
    "spikes",
    "spike_frames",
    "detail_median",
    "detail_min",
    "delta_e_median",
    "mouth_chroma_excess_p95",
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", nargs="*", default=None)
    ap.add_argument("--speech", nargs="*", default=list(DEFAULT_SPEECH))
    ap.add_argument("--config", default="x86-cpu")
    ap.add_argument("--animate-report", nargs="+", required=True, metavar="NAME=QUALITY_JSON")
    ap.add_argument("--out", default="benchmarks/results/stream_vs_animate")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    refs = dict(a.split("=", 1) if "=" in a else ("animate", a) for a in args.animate_report)
    out = Path(args.out)
    if args.reuse:
        rows = json.loads((out / "stream_vs_animate.json").read_text())["clips"]
    else:
        rows = stream_all(args)
    for name, path in refs.items():
        offline = {c["file"]: c for c in json.loads(Path(path).read_text())["clips"]}
        for r in rows:
            r[name] = {k: offline.get(r["file"], {}).get(k) for k in KEYS}

    def med(side, k):
        v = [r[side][k] for r in rows if r[side][k] is not None]
        return round(float(np.median(v)), 4) if v else None

    sides = ["stream", *refs]
    summary = {side: {k: med(side, k) for k in KEYS if k != "spike_frames"} for side in sides}
    summary["spikes_total"] = {side: sum(r[side]["spikes"] or 0 for r in rows) for side in sides}
    summary["detail_clip_min"] = {
        side: min((r[side]["detail_median"] for r in rows if r[side]["detail_median"] is not None), default=None)
        for side in sides
    }
    summary["abs_offset_max"] = {side: max(abs(r[side]["sync_offset_frames"] or 0) for r in rows) for side in sides}
    summary["dropped_total"] = sum(r["dropped"] for r in rows)
    summary["wall_over_audio"] = round(sum(r["wall_s"] for r in rows) / sum(r["audio_s"] for r in rows), 3)
    from parla.export.parity import machine

    report = {"machine": machine(), "config": args.config, "references": refs, "summary": summary, "clips": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream_vs_animate.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def stream_all(args) -> list[dict]:

    from parla.edge.avatar import Avatar
    from parla.edge.sinks import FileSink
    from parla.edge.sources import FileSource
    from parla.metrics.report import evaluate_generated

    rows = []
    for s in pick(EVAL / "speech", args.speech):
        for p in pick(EVAL / "portraits", args.portraits):
            name = f"{p.stem} x {s.stem}"
            with tempfile.TemporaryDirectory() as tmp, Avatar.from_image(p, args.config) as av:
                video = Path(tmp) / "stream.mp4"
                t = time.time()
                source = FileSource(s, av.config.audio.chunk_ms)
                source.lead_s = av.lead_for(source)  # as `parla stream --audio` plays a file
                stats = av.run(
                    source,
                    FileSink(video, av.config.video.fps, av.metadata),
                )
                wall = time.time() - t
                clip = evaluate_generated(video, portrait=p, audio=s)["clips"][0]
            row = {
                "file": name,
                "stream": {k: clip.get(k) for k in KEYS},
                "wall_s": round(wall, 2),
                "audio_s": round(stats.audio_s, 2),
                "frames": stats.frames,
                "dropped": stats.dropped,
                "audio_to_frame_ms": stats.summary()["audio_to_frame_ms"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
