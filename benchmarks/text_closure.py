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
    ap.add_argument("--sheet", action="store_true", help="also write sheet.png: the mouth at each /p b m/'s most "
                    "closed frame, with its gap, for a person to look at")  # fmt: skip
    args = ap.parse_args()

    from parla.assets import demo_file
    from parla.audio.tts import speak
    from parla.edge.avatar import animate
    from parla.export.parity import machine
    from parla.face.landmarks import mouth_opening
    from parla.metrics.tracks import track_video

    portrait = args.portrait or str(demo_file("portrait.jpg"))
    rows, tiles = [], []
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
                gap = float(np.nanmin(gaps[near])) if near.any() and not np.isnan(gaps[near]).all() else float("nan")
                if args.sheet and np.isfinite(gap):
                    i = int(np.flatnonzero(near)[np.nanargmin(gaps[near])])
                    tiles.append(_mouth_tile(out, track.landmarks, i, f"{ph.symbol} {ph.start_s:.2f}s {gap:.3f}"))
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
    if tiles:
        _write_sheet(tiles, out_dir / "sheet.png")
    print(f"{report['closed']} of {report['bilabials']} /p b m/ closed in the picture ({report['rate']})")
    return 0


def _mouth_tile(video: Path, landmarks: np.ndarray, index: int, label: str) -> np.ndarray:
    import cv2

    from parla.media.video import iter_frames

    frame = next(f for i, (_, f) in enumerate(iter_frames(video)) if i == index)
    lm = landmarks[index]
    c, half = lm[48:68].mean(0), int(0.9 * np.ptp(lm[48:68, 0])) + 4
    x0, y0 = max(0, int(c[0]) - half), max(0, int(c[1]) - half)
    tile = np.ascontiguousarray(frame[y0 : int(c[1]) + half, x0 : int(c[0]) + half])
    tile = cv2.resize(tile, (192, 192), interpolation=cv2.INTER_CUBIC)
    cv2.putText(tile, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    return tile


def _write_sheet(tiles: list[np.ndarray], path: Path, cols: int = 8) -> None:
    import cv2

    tiles = tiles + [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    rows = [np.concatenate(tiles[k : k + cols], 1) for k in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    sys.exit(main())
