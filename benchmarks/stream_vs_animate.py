"""Issue 5, acceptance 1: `parla stream PORTRAIT --audio SPEECH --sink file:OUT.mp4` (real-time pace, INT8 student
on the config's backend) against the offline `parla animate` (torch FP32 teacher) on the same clips, both measured
by `parla eval gen`. The offline figures come from a quality_eval.py report of the same model and clips.

    python benchmarks/stream_vs_animate.py --portraits p01 p03 p07 p10 p13 p16 \
        --animate-report benchmarks/quality_all/quality.json --out benchmarks/stream_vs_animate
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

KEYS = ("sync_confidence", "sync_offset_frames", "mouth_activity_ratio", "identity_distance", "blink_per_min")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portraits", nargs="*", default=None)
    ap.add_argument("--speech", nargs="*", default=list(DEFAULT_SPEECH))
    ap.add_argument("--config", default="x86-cpu")
    ap.add_argument("--animate-report", required=True)
    ap.add_argument("--out", default="benchmarks/stream_vs_animate")
    args = ap.parse_args()

    from parla.edge.avatar import Avatar
    from parla.edge.sinks import FileSink
    from parla.edge.sources import FileSource
    from parla.export.parity import machine
    from parla.metrics.report import evaluate_generated

    offline = {c["file"]: c for c in json.loads(Path(args.animate_report).read_text())["clips"]}
    rows = []
    for s in pick(EVAL / "speech", args.speech):
        for p in pick(EVAL / "portraits", args.portraits):
            name = f"{p.stem} x {s.stem}"
            with tempfile.TemporaryDirectory() as tmp, Avatar.from_image(p, args.config) as av:
                video = Path(tmp) / "stream.mp4"
                t = time.time()
                stats = av.run(FileSource(s, av.config.audio.chunk_ms), FileSink(video, av.config.video.fps,
                                                                                 av.metadata))
                wall = time.time() - t
                clip = evaluate_generated(video, portrait=p, audio=s)["clips"][0]
            row = {"file": name, "stream": {k: clip.get(k) for k in KEYS},
                   "animate": {k: offline.get(name, {}).get(k) for k in KEYS},
                   "wall_s": round(wall, 2), "audio_s": round(stats.audio_s, 2), "frames": stats.frames,
                   "dropped": stats.dropped, "audio_to_frame_ms": stats.summary()["audio_to_frame_ms"]}
            rows.append(row)
            print(json.dumps(row), flush=True)

    def med(side, k):
        v = [r[side][k] for r in rows if r[side][k] is not None]
        return round(float(np.median(v)), 4) if v else None

    summary = {side: {k: med(side, k) for k in KEYS} for side in ("stream", "animate")}
    summary["abs_offset_max"] = {side: max(abs(r[side]["sync_offset_frames"] or 0) for r in rows)
                                 for side in ("stream", "animate")}
    summary["dropped_total"] = sum(r["dropped"] for r in rows)
    summary["wall_over_audio"] = round(sum(r["wall_s"] for r in rows) / sum(r["audio_s"] for r in rows), 3)
    report = {"machine": machine(), "config": args.config, "animate_report": args.animate_report,
              "summary": summary, "clips": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream_vs_animate.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
