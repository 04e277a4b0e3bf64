"""Issue 15 (acceptance 3): does the *picture* close the lips on /p b m/ when the text is known?

`parla animate PHOTO --text "…"` (the edge runtime by default here: INT8 student, `--backend auto`), then the
landmarks of every frame of the written mp4 are detected again (dlib, as `parla eval gen` does) and, for each
/p b m/ of the TTS's own timing, the lips count as closed when some frame within ±40 ms has an inner-lip gap of
at most 2.5 % of the inter-ocular distance (the threshold of benchmarks/bilabial_closure.py, which measures the
driving landmarks instead).

The detector does not read every face's closed lips as 0: on a tilted, small, blurred or bearded face its inner-lip
points stay 0.03-0.09 apart on lips a person sees shut (session 8: eval p01, p05, p13, p18, sheets looked at). So
each portrait also gets its *floor*: the same detector on the same face with its lips closed and still: the photo
itself when its lips are closed, else its closed lip copy (parla.face.mouth; both at the photo's resolution, no
animation, no encoding). A bilabial also counts as closed "against the floor" when its gap is within CLOSED of
the floor. Both rates are reported; `--sheet` writes the frames for a person to look at.

    python benchmarks/text_closure.py --rescore benchmarks/results/text_closure_s8/*/   # recount saved rows

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
    ap.add_argument("--sheet", action="store_true", help="also write sheet.jpg: the mouth at each /p b m/'s most "
                    "closed frame, with its gap, for a person to look at")  # fmt: skip
    ap.add_argument("--rescore", nargs="*", default=None, help="recount these saved results (floors added)")
    args = ap.parse_args()
    if args.rescore is not None:
        for folder in args.rescore:
            path = Path(folder) / "text_closure.json"
            report = json.loads(path.read_text())
            _count(report, closed_floor(report["portrait"]))
            path.write_text(json.dumps(report, indent=2) + "\n")
            _say(report)
        return 0

    from parla.assets import demo_file
    from parla.audio.tts import speak
    from parla.edge.avatar import animate
    from parla.export.parity import machine
    from parla.face.landmarks import mouth_opening
    from parla.face.tracks import track_video

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
    report = {"machine": machine(), "portrait": portrait, "backend": args.backend, "rows": rows}
    _count(report, closed_floor(portrait))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "text_closure.json").write_text(json.dumps(report, indent=2) + "\n")
    if tiles:
        _write_sheet(tiles, out_dir / "sheet.jpg")
    _say(report)
    return 0


def closed_floor(portrait: str) -> float:
    """The detector's inner-lip gap on this face with its lips closed and still (see the module's docstring)."""
    from parla.face.detect import detect_faces, fit_landmarks
    from parla.face.landmarks import mouth_opening
    from parla.face.portrait import Portrait
    from parla.media.image import load_image

    image = load_image(portrait)
    p = Portrait.from_image(image, 128)
    still = p.mouths[-1].image if p.mouths else image
    return float(mouth_opening(fit_landmarks(still, tuple(detect_faces(image)[0].box))))


def _count(report: dict, floor: float) -> None:
    rows = report["rows"]
    for r in rows:
        r["closed"] = bool(r["gap"] <= CLOSED)
        r["closed_vs_floor"] = bool(r["gap"] <= max(CLOSED, floor + CLOSED))
    n = len(rows)
    report.update(
        floor=round(floor, 4),
        bilabials=n,
        closed=sum(r["closed"] for r in rows),
        rate=round(sum(r["closed"] for r in rows) / n, 3) if n else None,
        closed_vs_floor=sum(r["closed_vs_floor"] for r in rows),
        rate_vs_floor=round(sum(r["closed_vs_floor"] for r in rows) / n, 3) if n else None,
        no_face=sum(not np.isfinite(r["gap"]) for r in rows),
    )


def _say(r: dict) -> None:
    print(f"{Path(r['portrait']).name}: {r['closed']} of {r['bilabials']} /p b m/ closed in the picture "
          f"({r['rate']}); {r['closed_vs_floor']} ({r['rate_vs_floor']}) within {CLOSED} of the face's own closed "
          f"reading {r['floor']}; no face found at {r['no_face']}")  # fmt: skip


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
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    sys.exit(main())
