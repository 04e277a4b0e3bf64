"""Issue 15 (acceptance 3): does the *picture* close the lips on /p b m/ when the text is known?

`parla animate PHOTO --text "…"` (the edge runtime by default here: INT8 student, `--backend auto`), then the
landmarks of every frame of the written mp4 are detected again (dlib, as `parla eval gen` does) and, for each
/p b m/ of the TTS's own timing, the lips count as closed when some frame within ±40 ms has an inner-lip gap of
at most 2.5 % of the inter-ocular distance (the threshold of benchmarks/bilabial_closure.py, which measures the
driving landmarks instead). Also reports the time to the first frame.

    python benchmarks/text_closure.py --portrait parla/assets/demo/portrait.jpg --out benchmarks/results/text_closure
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCES = (
    "Bob put a map by the pump.",
    "My mom made maple pie, but Paul bought a big blue boat.",
    "Maybe Pam will buy more plums at the market.",
)
CLOSED = 0.025
TOLERANCE_S = 0.040


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portrait", default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--sentences", nargs="*", default=list(SENTENCES))
    ap.add_argument("--out", default="benchmarks/results/text_closure")
    args = ap.parse_args()

    from parla.assets import demo_file
    from parla.audio.tts import speak
    from parla.edge.avatar import animate
    from parla.export.parity import machine
    from parla.face.landmarks import mouth_opening
    from parla.metrics.tracks import track_video

    portrait = args.portrait or str(demo_file("portrait.jpg"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, text in enumerate(args.sentences):
            out = Path(tmp) / f"s{k}.mp4"
            t = time.perf_counter()
            animate(portrait, None, out, text=text, backend=args.backend, show=False)
            seconds = time.perf_counter() - t
            track = track_video(out)
            gaps = mouth_opening(track.landmarks)
            times = np.arange(track.n_frames) / track.fps
            speech = speak(text)  # the same text and voice: the same timing (eSpeak NG is deterministic)
            for ph in speech.phonemes:
                if not ph.bilabial:
                    continue
                near = (times >= ph.start_s - TOLERANCE_S) & (times <= ph.end_s + TOLERANCE_S)
                gap = float(np.nanmin(gaps[near])) if near.any() else float("nan")
                rows.append({"sentence": k, "phoneme": ph.symbol, "start_s": round(ph.start_s, 3),
                             "gap": round(gap, 4), "closed": bool(gap <= CLOSED)})  # fmt: skip
            print(f"{text!r}: rendered in {seconds:.1f} s; face found in {np.mean(track.valid):.0%} of frames")
    closed = [r["closed"] for r in rows]
    report = {
        "machine": machine(),
        "portrait": portrait,
        "backend": args.backend,
        "bilabials": len(rows),
        "closed": int(sum(closed)),
        "rate": round(float(np.mean(closed)), 3) if rows else None,
        "rows": rows,
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "text_closure.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['closed']} of {report['bilabials']} /p b m/ closed in the picture ({report['rate']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
