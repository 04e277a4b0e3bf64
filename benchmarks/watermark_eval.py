"""Issue 6: how well the invisible watermark survives, how often it fires on real video, and what it costs.

    python benchmarks/watermark_eval.py --out benchmarks/results/watermark [--portraits p01 p02 ...] [--seconds 8]

1. Generated clips: every eval portrait animated (teacher, seed 0, watermark on) with the first seconds of the
   English eval speech, then transformed with real re-encodes (PyAV / libx264): CRF 28, half size (CRF 23),
   half size + CRF 28, the face crop only (CRF 23), and a 25 -> 30 fps and a 25 -> 15 fps capture (CRF 23).
   Detection is counted per clip and per 2-s segment (50 frames), i.e. what `parla verify` sees in 2 s.
2. False positives: `parla verify` on every real video of ../shared/data (eval and train), and the single-frame
   detector on >= 1,000 real frames spread over them.
3. Visual cost (PSNR of watermarked vs the same frame unwatermarked) and time per frame at 256² and 1080p.
Uses ../shared/data/eval only for evaluation; nothing here trains anything.
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
DATA = ROOT.parent / "shared" / "data"
SEGMENT = 50


def reencode(
    frames: list[np.ndarray],
    path: Path,
    *,
    scale: float = 1.0,
    crf: int = 23,
    fps_in: float = 25,
    fps_out: float = 25,
    crop: tuple[int, int, int, int] | None = None,
) -> Path:
    import cv2

    from parla.media.video import VideoWriter

    n_out = int(round(len(frames) * fps_out / fps_in))
    with VideoWriter(path, fps_out, crf=crf, preset="medium") as w:
        for i in range(n_out):
            f = frames[min(int(i * fps_in / fps_out), len(frames) - 1)]  # a capture: nearest earlier frame
            if crop:
                y0, y1, x0, x1 = crop
                f = f[y0:y1, x0:x1]
            if scale != 1.0:
                h, wd = f.shape[:2]
                f = cv2.resize(f, (max(2, int(wd * scale)), max(2, int(h * scale))), interpolation=cv2.INTER_AREA)
            w.write(f)
    return path


def detect_segments(path: Path) -> tuple[bool, list[bool], float]:
    from parla.media.video import iter_frames
    from parla.watermark.core import Accumulator

    frames = [f for _, f in iter_frames(path)]
    whole = Accumulator()
    for f in frames[:100]:
        whole.add(f)
    segs = []
    for s in range(0, len(frames) - SEGMENT + 1, SEGMENT):
        a = Accumulator()
        for f in frames[s : s + SEGMENT]:
            a.add(f)
        segs.append(a.result().found)
    r = whole.result()
    return r.found, segs, r.psr


def generated(portraits: list[Path], speech: Path, seconds: float, tmp: Path) -> dict:
    from parla.audio import load_audio
    from parla.edge.avatar import animate
    from parla.face.detect import detect_faces, select_face
    from parla.media.image import load_image
    from parla.media.video import iter_frames

    audio = load_audio(speech)[: int(seconds * 16000)]
    import soundfile as sf

    wav = tmp / "speech.wav"
    sf.write(wav, audio, 16000)
    conds = {
        "crf28": {"crf": 28},
        "half": {"scale": 0.5},
        "half_crf28": {"scale": 0.5, "crf": 28},
        "face_crop": {"crop": True},
        "capture_30fps": {"fps_out": 30},
        "capture_15fps": {"fps_out": 15},
    }
    rows = []
    for p in portraits:
        video = animate(p, wav, tmp / f"{p.stem}.mp4", seed=0, show=False)
        frames = [f for _, f in iter_frames(video)]
        box = select_face(detect_faces(load_image(p))).box
        row = {"portrait": p.name, "size": list(frames[0].shape[:2])}
        for name, opt in conds.items():
            opt = dict(opt)
            if opt.pop("crop", False):
                x0, y0, x1, y1 = (int(v) for v in box)
                h, w = frames[0].shape[:2]
                pad = int(0.15 * (x1 - x0))
                opt["crop"] = (max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad))
            found, segs, psr = detect_segments(reencode(frames, tmp / f"{p.stem}_{name}.mp4", **opt))
            row[name] = {"clip": found, "segments": f"{sum(segs)}/{len(segs)}", "z": round(psr, 1)}
        rows.append(row)
        print(row, flush=True)
    summary = {}
    for name in conds:
        clips = [r[name]["clip"] for r in rows]
        seg_ok = sum(int(r[name]["segments"].split("/")[0]) for r in rows)
        seg_n = sum(int(r[name]["segments"].split("/")[1]) for r in rows)
        summary[name] = {
            "clips": f"{sum(clips)}/{len(clips)}",
            "clip_rate": sum(clips) / len(clips),
            "segments": f"{seg_ok}/{seg_n}",
            "segment_rate": seg_ok / max(seg_n, 1),
        }
    return {"rows": rows, "summary": summary}


def false_positives(frames_target: int) -> dict:
    from parla.media.video import iter_frames
    from parla.watermark import verify
    from parla.watermark.core import Accumulator

    videos = sorted(
        p
        for d in ("eval/videos", "train/videos")
        for p in (DATA / d).iterdir()
        if p.suffix.lower() in (".mp4", ".mpg", ".mov", ".avi")
    )
    clip_hits, zs, frame_hits, n_frames = [], [], 0, 0
    per_video = max(frames_target // len(videos) + 1, 1)
    for v in videos:
        r = verify(v, max_frames=100)
        zs.append(r.psr)
        if r.found:
            clip_hits.append(v.name)
        frames = [f for _, f in iter_frames(v)]
        for f in frames[:: max(len(frames) // per_video, 1)][:per_video]:
            a = Accumulator()
            a.add(f)
            frame_hits += int(a.result().found)
            n_frames += 1
    return {
        "videos": len(videos),
        "video_false_positives": clip_hits,
        "z_max": round(max(zs), 2),
        "z_median": round(float(np.median(zs)), 2),
        "frames": n_frames,
        "frame_false_positives": frame_hits,
    }


def cost() -> dict:
    from parla.export.parity import psnr
    from parla.media.image import load_image
    from parla.watermark.core import Embedder

    out = {}
    img = load_image(ROOT / "tests" / "data" / "astronaut.jpg")
    import cv2

    for name, size in (("256", (256, 256)), ("1080p", (1920, 1080))):
        f = cv2.resize(img, size)
        e = Embedder(0x5ABCDE)
        e(f, 0)
        t = time.perf_counter()
        for i in range(20):
            w = e(f, i)
        out[name] = {
            "ms_per_frame": round((time.perf_counter() - t) / 20 * 1e3, 2),
            "psnr": round(float(psnr(w, f)), 2),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/watermark")
    ap.add_argument("--portraits", nargs="*", default=None)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--fp-frames", type=int, default=1200)
    ap.add_argument("--skip-generated", action="store_true")
    ap.add_argument("--skip-fp", action="store_true", help="skip the false-positive scan of real videos")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ports = sorted((DATA / "eval" / "portraits").iterdir())
    if args.portraits:
        ports = [p for p in ports if any(p.name.startswith(x) for x in args.portraits)]
    speech = next(p for p in sorted((DATA / "eval" / "speech").iterdir()) if p.name.startswith("s01"))
    from parla.export.parity import machine

    report = {"machine": machine(), "cost": cost()}
    print(report["cost"], flush=True)
    if not args.skip_generated:
        with tempfile.TemporaryDirectory() as tmp:
            report["generated"] = generated(ports, speech, args.seconds, Path(tmp))
    if not args.skip_fp:
        report["false_positives"] = false_positives(args.fp_frames)
        print(report["false_positives"], flush=True)
    (out / "watermark.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
