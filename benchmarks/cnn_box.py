"""dlib's CNN (MMOD) face box against its HOG box, on training face photos: the 68-point landmark model was trained on
HOG-style boxes; would a CNN box mapped to one give better landmarks? (Session 18: measured, not shipped;
docs/decisions.md.)

For every 4th photo where both detectors find one face: the HOG box, the CNN box on a copy at SIDE px, the median map
(scale, centre shift in box widths) between them, and the landmarks fitted in the HOG box against those fitted in
the CNN box as it is and as mapped (largest point distance, in inter-ocular distances).

    python benchmarks/cnn_box.py ../shared/data/train/faces --every 4 --limit 64 --sides 320 640 [--json out.json]
    python benchmarks/cnn_box.py ../shared/data/train/faces --every 4 --skip 2 --limit 12 --sides 320 640 \
        --map 1.088 0.016 0.092 --map 1.049 0.016 0.100       # the medians of the first, on other photos
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def box_map(hog: np.ndarray, cnn: np.ndarray) -> np.ndarray:
    """(scale, dx, dy): HOG width / CNN width, and the HOG centre's shift from the CNN centre in CNN widths."""
    wc, wh = cnn[2] - cnn[0], hog[2] - hog[0]
    cc, ch = (cnn[:2] + cnn[2:]) / 2, (hog[:2] + hog[2:]) / 2
    return np.array([wh / wc, *((ch - cc) / wc)])


def cnn_boxes(image: np.ndarray, side: int) -> list[np.ndarray]:
    """The CNN detector's boxes on a copy at most ``side`` px (no upsampling), in image pixels."""
    from parla.face import detect

    small, scale = detect._resize_max(image, side)
    return [
        np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()]) / scale
        for d in detect._cnn()(small, 0)
    ]


def to_hog_box(box: np.ndarray, m) -> tuple[float, ...]:
    """A CNN box moved by a (scale, dx, dy) map as from ``box_map``."""
    k, dx, dy = m
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + dx * w, (box[1] + box[3]) / 2 + dy * w
    return (cx - k * w / 2, cy - k * h / 2, cx + k * w / 2, cy + k * h / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--every", type=int, default=4, help="every Nth photo (the folder's sources are in runs)")
    ap.add_argument("--skip", type=int, default=0, help="start at this photo")
    ap.add_argument("--sides", type=int, nargs="+", default=[320, 640])
    ap.add_argument(
        "--map",
        nargs=3,
        type=float,
        action="append",
        metavar=("SCALE", "DX", "DY"),
        help="the map to score, one per side (default: none, the raw box only)",
    )
    ap.add_argument("--json")
    args = ap.parse_args()

    import cv2

    from parla.face import detect
    from parla.face.landmarks import interocular

    photos = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rows = []
    for path in photos[args.skip :: args.every][: args.limit]:
        image = np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])
        hog = detect.detect_boxes(image, cnn_fallback=False)
        if len(hog) != 1:
            continue
        ref = detect.fit_landmarks(image, hog[0][0])
        row = {"photo": path.name, "hog": list(hog[0][0]), "side": max(image.shape[:2])}
        for i, side in enumerate(args.sides):
            found = cnn_boxes(image, side)
            if len(found) == 1:
                cnn = found[0]
                row[f"cnn{side}"] = cnn.tolist()
                row[f"map{side}"] = box_map(np.array(hog[0][0]), cnn).tolist()
                iod = float(interocular(ref))
                boxes = [("raw", tuple(cnn))] + ([("mapped", to_hog_box(cnn, args.map[i]))] if args.map else [])
                for name, box in boxes:
                    lm = detect.fit_landmarks(image, box)
                    row[f"err{side}_{name}"] = float(np.linalg.norm(lm - ref, axis=1).max() / iod)
        rows.append(row)
    summary = {"photos": len(rows)}
    for side in args.sides:
        maps = np.array([r[f"map{side}"] for r in rows if f"map{side}" in r])
        summary[f"map{side}_median"] = np.median(maps, 0).tolist() if len(maps) else None
        for name in ("raw", "mapped"):
            if name == "mapped" and not args.map:
                continue
            errs = [r[f"err{side}_{name}"] for r in rows if f"err{side}_{name}" in r]
            summary[f"err{side}_{name}_median"] = float(np.median(errs)) if errs else None
            summary[f"err{side}_{name}_p90"] = float(np.percentile(errs, 90)) if errs else None
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
