"""How far a blink closes the eyes in the picture: one frame of each portrait rendered with the blink amount swept
from open (0) to the synthesizer's full blink (1), the eye region cut out and enlarged, one row per portrait.

    python benchmarks/blink_look.py --out benchmarks/results/blink_look [--portraits A.jpg B.jpg ...]

The sheet is for looking (docs/quality.md, "What a viewer still sees"): the blink metric reads the eye aspect
ratio of the tracked landmarks and cannot tell an eye that closes from one that narrows.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AMOUNTS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def row(photo: Path, speech: np.ndarray, width: int = 240) -> np.ndarray:
    import cv2

    from parla.edge import Avatar
    from parla.face import detect

    with Avatar.from_image(photo) as av:
        motion = av.new_motion(lookahead_frames=4)
        frames = motion.push(speech) + motion.flush(len(speech))
        renderer = av.new_renderer()
        eyes = detect.detect_faces(av.portrait.image)[0].landmarks[36:48]
        pad = 0.2 * float(np.ptp(eyes[:, 0]))
        x0, y0 = np.maximum(eyes.min(0) - pad, 0).astype(int)
        x1, y1 = (eyes.max(0) + pad).astype(int)
        tiles = []
        for b in AMOUNTS:
            img = renderer.render(dataclasses.replace(frames[len(frames) // 2], blink=b))
            t = cv2.resize(
                img[y0:y1, x0:x1], (width, int(width * (y1 - y0) / (x1 - x0))), interpolation=cv2.INTER_CUBIC
            )
            cv2.putText(t, f"{b:.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
            tiles.append(t)
    return np.concatenate(tiles, 1)


def main() -> int:
    import cv2

    from parla.audio import load_audio

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--portraits", nargs="*", type=Path, default=[ROOT / "parla" / "assets" / "demo" / "portrait.jpg"])
    p.add_argument("--out", type=Path, default=Path("parla-bench/blink_look"))
    args = p.parse_args()
    speech = load_audio(ROOT / "parla" / "assets" / "demo" / "speech.wav")[: 2 * 16_000]
    rows = [row(photo, speech) for photo in args.portraits]
    width = min(r.shape[1] for r in rows)
    args.out.mkdir(parents=True, exist_ok=True)
    sheet = np.concatenate([r[:, :width] for r in rows], 0)
    cv2.imwrite(str(args.out / "sheet.jpg"), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f"{args.out / 'sheet.jpg'}: {len(rows)} portraits x blink {', '.join(f'{b:g}' for b in AMOUNTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
