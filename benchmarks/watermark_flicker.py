"""Does the watermark flicker? The residual (marked minus unmarked frame, same seed) and how much it changes between
consecutive frames, offline (`parla animate`) and streamed (`parla stream --sink file:`), on eval portraits.

Two readings per clip:
- ``mark``: the mark itself: the Embedder applied to the unmarked decoded frames, minus those frames (what the
  watermark adds, before the codec);
- ``decoded``: the marked video decoded minus the unmarked video decoded (two H.264 encodes: includes the codec's
  own frame-to-frame noise).
For each: per consecutive pair, the mean absolute change of the residual (grey levels), its maximum and median
over the clip, and the frames where it is largest. Also the marked video's own frame-to-frame difference. A contact
sheet shows a flat background patch of the residual (x24 + 128) over 12 consecutive frames, and the marked frames.

    python benchmarks/watermark_flicker.py --portraits p01 p07 p16 --out benchmarks/results/watermark_flicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SPEECH = "s01_en_sadtalker_RD_Radio31_000"


def frames_of(path: Path) -> list[np.ndarray]:
    from parla.media.video import iter_frames

    return [f for _, f in iter_frames(path)]


def changes(res: list[np.ndarray]) -> dict:
    ch = np.array([np.abs(res[t].astype(np.float32) - res[t - 1]).mean() for t in range(1, len(res))])
    return {"max": round(float(ch.max()), 3), "median": round(float(np.median(ch)), 3),
            "worst_frames": [int(i) + 1 for i in np.argsort(ch)[::-1][:3]]}  # fmt: skip


def render(kind: str, portrait: Path, wav: Path, out: Path, watermark: bool) -> Path:
    if kind == "offline":
        from parla.edge.avatar import animate

        return animate(portrait, wav, out, seed=0, watermark=watermark, credentials=False, show=False)
    cmd = [sys.executable, "-m", "parla", "stream", str(portrait), "--audio", str(wav), "--sink", f"file:{out}"]
    cmd += [] if watermark else ["--no-watermark"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def sheet(rows: list[tuple[str, list[np.ndarray], list[np.ndarray]]], path: Path) -> None:
    """Per clip: 12 consecutive residual patches (x24 + 128) over the same patches of the marked frames."""
    import cv2

    from parla.face.detect import detect_faces

    lines = []
    for _name, res, marked in rows:
        h, w = marked[0].shape[:2]
        faces = detect_faces(marked[0])
        x0 = 0 if not faces or faces[0].box[0] > w / 2 else w - 192  # the side away from the face: background
        t0 = len(res) // 3
        top = [np.clip(res[t][:192, x0 : x0 + 192].astype(np.float32) * 24 + 128, 0, 255) for t in range(t0, t0 + 12)]
        bottom = [marked[t][:192, x0 : x0 + 192] for t in range(t0, t0 + 12)]
        lines.append(np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0).astype(np.uint8))
    img = np.concatenate(lines, 0)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portraits", nargs="*", default=["p01", "p07", "p16"])
    ap.add_argument("--modes", nargs="*", default=["offline", "stream"])
    ap.add_argument("--out", default="benchmarks/results/watermark_flicker")
    args = ap.parse_args()
    from parla.export.parity import machine
    from parla.watermark import Watermarker

    wav = next((DATA / "eval" / "speech").glob(SPEECH + ".*"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, shown = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for stem in args.portraits:
            portrait = next((DATA / "eval" / "portraits").glob(stem + "_*"))
            for mode in args.modes:
                on = frames_of(render(mode, portrait, wav, Path(tmp) / f"{stem}_{mode}_on.mp4", True))
                off = frames_of(render(mode, portrait, wav, Path(tmp) / f"{stem}_{mode}_off.mp4", False))
                n = min(len(on), len(off))
                wm = Watermarker("flicker-check")
                mark = [wm(f, t).astype(np.int16) - f for t, f in enumerate(off[:n])]
                decoded = [on[t].astype(np.int16) - off[t] for t in range(n)]
                row = {"portrait": portrait.stem, "mode": mode, "frames": n, "size": list(on[0].shape[:2]),
                       "mark": changes(mark), "decoded": changes(decoded),
                       "marked_video_frame_diff": changes([f.astype(np.int16) for f in on[:n]]),
                       "unmarked_video_frame_diff": changes([f.astype(np.int16) for f in off[:n]])}  # fmt: skip
                results.append(row)
                shown.append((f"{stem} {mode}", decoded, on))
                print(json.dumps(row), flush=True)
    sheet(shown, out / "sheet.jpg")
    worst = max(r["mark"]["max"] for r in results)
    (out / "flicker.json").write_text(json.dumps({"machine": machine(), "worst_mark_change": worst,
                                                  "clips": results}, indent=1) + "\n")  # fmt: skip
    print(f"worst consecutive change of the mark: {worst} grey levels (mean absolute)")


if __name__ == "__main__":
    main()
