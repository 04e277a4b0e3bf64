"""dlib's CNN (MMOD) face box against its HOG box, on training face photos: the 68-point landmark model was trained on
HOG-style boxes, so a CNN box is mapped to one before landmarks are fitted (`parla.face.detect.CNN_TO_HOG`).

For every 4th photo where both detectors find one face: the HOG box, the CNN box on a copy at SIDE px, the median map
(scale, centre shift in box widths) between them, and the landmarks fitted in the HOG box against those fitted in
the CNN box as it is and as mapped (largest point distance, in inter-ocular distances).

    python benchmarks/cnn_box.py ../shared/data/train/faces --every 4 --limit 64 --sides 320 640 [--json out.json]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--every", type=int, default=4, help="every Nth photo (the folder's sources are in runs)")
    ap.add_argument("--sides", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--json")
    args = ap.parse_args()

    import cv2

    from parla.face import detect
    from parla.face.landmarks import interocular

    photos = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rows = []
    for path in photos[:: args.every][: args.limit]:
        image = np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])
        hog = detect.detect_boxes(image, cnn_fallback=False)
        if len(hog) != 1:
            continue
        ref = detect.fit_landmarks(image, hog[0][0])
        row = {"photo": path.name, "hog": list(hog[0][0]), "side": max(image.shape[:2])}
        for side in args.sides:
            found = detect.cnn_boxes(image, side, 0, mapped=False)
            if len(found) == 1:
                cnn = np.array(found[0][0])
                row[f"cnn{side}"] = cnn.tolist()
                row[f"map{side}"] = box_map(np.array(hog[0][0]), cnn).tolist()
                iod = float(interocular(ref))
                for name, box in (("raw", cnn), ("mapped", detect.to_hog_box(cnn, side))):
                    lm = detect.fit_landmarks(image, tuple(box))
                    row[f"err{side}_{name}"] = float(np.linalg.norm(lm - ref, axis=1).max() / iod)
        rows.append(row)
    summary = {"photos": len(rows)}
    for side in args.sides:
        maps = np.array([r[f"map{side}"] for r in rows if f"map{side}" in r])
        summary[f"map{side}_median"] = np.median(maps, 0).tolist() if len(maps) else None
        for name in ("raw", "mapped"):
            errs = [r[f"err{side}_{name}"] for r in rows if f"err{side}_{name}" in r]
            summary[f"err{side}_{name}_median"] = float(np.median(errs)) if errs else None
            summary[f"err{side}_{name}_p90"] = float(np.percentile(errs, 90)) if errs else None
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
