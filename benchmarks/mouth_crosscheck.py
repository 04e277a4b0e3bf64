"""Issue 14, session 16: does the rendered mouth open, or does the instrument under-read it? The mouth measures of
`parla eval gen` (mouth voiced/silent, the sync probe's input) come from dlib's 68-point model. This reads the same
pictures with a second, independent detector, MediaPipe FaceMesh (478 points), and compares both with what the
renderer was asked to draw.

Three stages, because MediaPipe 0.10.21 (the last release that ships its models) needs numpy<2 and cannot share
the package's environment:

    # 1. in the package's venv: the photo and its lip copies (the sources the renderer warps from, whose
    #    inner-lip gap is known), short clips with the driven opening of every frame, dlib's reading of each
    python benchmarks/mouth_crosscheck.py render --clips p01 p02 p03 p04 p07 --speech s01 s05 --seconds 8 \
        --work runs/mouth_crosscheck
    # 2. in a MediaPipe venv (python3 -m venv /tmp/mp && /tmp/mp/bin/pip install mediapipe==0.10.21 "numpy<2")
    /tmp/mp/bin/python benchmarks/mouth_crosscheck.py mesh --work runs/mouth_crosscheck
    # (after a change to the tracker: `reread` in the package's venv reads dlib's landmarks off the same files again)
    # 3. either venv: the report
    python benchmarks/mouth_crosscheck.py report --work runs/mouth_crosscheck \
        --out benchmarks/results/mouth_crosscheck

Both detectors give the mean inner-lip gap over three pairs across the mouth divided by the distance between the
eye centres: dlib pairs (61, 67), (62, 66), (63, 65) and eye points 36-41 / 42-47 (``parla.face.landmarks``);
FaceMesh pairs (82, 87), (13, 14), (312, 317) and the mean of each eye's 16 contour points. Uses
../shared/data/eval only for evaluation. Images and videos stay under --work (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "data" / "eval"

MESH_PAIRS = ((82, 87), (13, 14), (312, 317))
MESH_EYES = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
)


def pick(folder: Path, prefixes: list[str] | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".md")
    return [p for p in files if not prefixes or any(p.name.startswith(x) for x in prefixes)]


def _dlib_clip(video: Path) -> dict:
    """dlib's reading of a clip, frame by frame: the mouth opening and the mouth box (centre x, y and width)."""
    from parla.face.landmarks import mouth_opening
    from parla.face.tracks import track_video

    lms = track_video(video).landmarks
    lips = lms[:, 48:60]
    box = np.concatenate([lips.mean(1), np.ptp(lips[..., :1], axis=1)], 1)
    return {"dlib": [round(float(x), 4) for x in mouth_opening(lms)], "mouth_box": np.round(box, 1).tolist()}


def render(args: argparse.Namespace) -> int:
    import parla.face.expression as expression
    from parla.audio.io import SAMPLE_RATE, load_audio
    from parla.edge.avatar import animate
    from parla.face.detect import detect_faces, select_face
    from parla.face.landmarks import mouth_opening
    from parla.face.portrait import Portrait
    from parla.media.image import load_image, save_image
    from parla.progress import progress

    work = Path(args.work)
    (work / "images").mkdir(parents=True, exist_ok=True)
    portraits = pick(EVAL / "portraits", args.portraits)
    copies = []
    bar = progress(len(portraits), "photos and lip copies", unit="photo")
    for p in portraits:
        bar.update(1)
        image = load_image(p)
        face = select_face(detect_faces(image), name=p.name)
        prepared = Portrait.from_landmarks(image, face.landmarks, 128)
        sources = [("photo", image, prepared.landmarks)] + [
            (f"copy{k}", m.image, m.landmarks) for k, m in enumerate(prepared.mouths)
        ]
        for name, img, lms in sources:
            path = work / "images" / f"{p.stem[:3]}_{name}.png"
            save_image(path, img)
            found = detect_faces(img)
            seen = float(mouth_opening(select_face(found, name=path.name).landmarks)) if found else float("nan")
            copies.append({"portrait": p.stem[:3], "source": name, "image": str(path.relative_to(work)),
                           "nominal": round(float(mouth_opening(lms)), 4), "dlib": round(seen, 4)})  # fmt: skip
    bar.close()
    drive, driven = expression.ExpressionBasis.drive, []

    def logged(self, *a, **k):
        d = drive(self, *a, **k)
        driven.append(float(mouth_opening(d)))
        return d

    expression.ExpressionBasis.drive = logged
    videos = []
    for s in pick(EVAL / "speech", args.speech) if args.speech else ():
        audio = load_audio(s)[: int(args.seconds * SAMPLE_RATE)]
        for p in pick(EVAL / "portraits", args.clips):
            driven.clear()
            video = work / f"{p.stem[:3]}_{s.stem[:3]}.mp4"
            animate(p, audio, video, net=args.net, backend="torch", show=False, seed=0)
            seen = _dlib_clip(video)
            drv = driven[-len(seen["dlib"]) :]
            videos.append({"portrait": p.stem[:3], "speech": s.stem[:3], "video": video.name,
                           "driven": [round(x, 4) for x in drv], **seen})  # fmt: skip
            print(f"{video.name}: {len(seen)} frames", flush=True)
    (work / "render.json").write_text(json.dumps({"copies": copies, "videos": videos}) + "\n")
    return 0


def reread(args: argparse.Namespace) -> int:
    """dlib's readings of the clips again (the tracker changed; the videos and FaceMesh's readings stand)."""
    from parla.face.detect import detect_faces, select_face
    from parla.face.landmarks import mouth_opening
    from parla.media.image import load_image

    work = Path(args.work)
    for name in ("render.json", "mesh.json"):
        if not (work / name).exists():
            continue
        rec = json.loads((work / name).read_text())
        for row in rec["copies"]:
            found = detect_faces(load_image(work / row["image"]))
            row["dlib"] = round(float(mouth_opening(select_face(found).landmarks)), 4) if found else float("nan")
        for v in rec["videos"]:
            v.update(_dlib_clip(work / v["video"]))
        (work / name).write_text(json.dumps(rec) + "\n")
    return 0


def _mesh_opening(face, w: int, h: int) -> float:
    pts = np.array([(q.x * w, q.y * h) for q in face.landmark])
    eyes = [pts[list(e)].mean(0) for e in MESH_EYES]
    gap = np.mean([np.linalg.norm(pts[u] - pts[d]) for u, d in MESH_PAIRS])
    return float(gap / max(np.linalg.norm(eyes[1] - eyes[0]), 1e-6))


def mesh(args: argparse.Namespace) -> int:
    import cv2
    import mediapipe as mp

    work = Path(args.work)
    rec = json.loads((work / "render.json").read_text())
    fm = mp.solutions.face_mesh
    with fm.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as still:
        for row in rec["copies"]:
            bgr = cv2.imread(str(work / row["image"]))
            res = still.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            faces = res.multi_face_landmarks or []
            row["mesh"] = round(_mesh_opening(faces[0], bgr.shape[1], bgr.shape[0]), 4) if faces else None
    for row in rec["videos"]:
        seen = []
        with fm.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True) as video:
            cap = cv2.VideoCapture(str(work / row["video"]))
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                faces = video.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
                seen.append(round(_mesh_opening(faces[0], bgr.shape[1], bgr.shape[0]), 4) if faces else None)
            cap.release()
        row["mesh"] = seen
        print(f"{row['video']}: {len(seen)} frames", flush=True)
    rec["mesh_version"] = mp.__version__
    (work / "mesh.json").write_text(json.dumps(rec) + "\n")
    return 0


def _fit(driven: list, seen: list) -> dict:
    """Slope (least squares with an intercept) and correlation of a detector's reading on the driven opening."""
    n = min(len(driven), len(seen))
    x = np.array(driven[:n], float)
    y = np.array([np.nan if v is None else v for v in seen[:n]], float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 10 or np.std(x[ok]) == 0:
        return {"frames": int(ok.sum()), "slope": None, "r": None}
    slope = float(np.polyfit(x[ok], y[ok], 1)[0])
    return {"frames": int(ok.sum()), "slope": round(slope, 3), "r": round(float(np.corrcoef(x[ok], y[ok])[0, 1]), 3)}


def _sheet(work: Path, videos: list[dict], path: Path) -> None:
    """Mouth crops of the first speech clip's videos at quantiles of the driven opening, readings written on."""
    import cv2

    rows = []
    first = videos[0]["speech"]
    for v in (v for v in videos if v["speech"] == first):
        cap, frames = cv2.VideoCapture(str(work / v["video"])), []
        while (got := cap.read())[0]:
            frames.append(got[1])
        cap.release()
        drv, box = np.array(v["driven"][: len(frames)]), np.array(v["mouth_box"], float)
        order = np.argsort(drv)
        tiles = []
        for q in (0.05, 0.5, 0.8, 0.95, 1.0):
            i = int(order[int(q * (len(order) - 1))])
            ok = np.flatnonzero(np.isfinite(box).all(1))
            cx, cy, w = box[ok[np.argmin(np.abs(ok - i))]]  # the nearest frame the mouth was found on
            h, wd = frames[i].shape[:2]
            x0, x1 = int(max(cx - 1.3 * w, 0)), int(min(cx + 1.3 * w, wd))
            y0, y1 = int(max(cy - 0.9 * w, 0)), int(min(cy + 0.9 * w, h))
            tile = cv2.resize(frames[i][y0:y1, x0:x1], (260, 180), interpolation=cv2.INTER_AREA)
            mesh = v["mesh"][i]
            cv2.putText(tile, f"{v['portrait']} frame {i} driven {drv[i]:.2f}", (4, 15), 0, 0.45, (255, 255, 255), 1)
            seen = f"dlib {v['dlib'][i]:.2f} FaceMesh " + ("-" if mesh is None else f"{mesh:.2f}")
            cv2.putText(tile, seen, (4, 174), 0, 0.45, (0, 255, 255), 1)
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])


def report(args: argparse.Namespace) -> int:
    work, out = Path(args.work), Path(args.out)
    rec = json.loads((work / "mesh.json").read_text())
    by: dict[str, list] = {}
    for row in rec["copies"]:
        by.setdefault(row["portrait"], []).append(row)
    lines = ["# Mouth opening read by two detectors", "",
             "Inner-lip gap / inter-ocular distance. *nominal*: the gap the renderer drew (the source's own "
             "landmarks); *dlib*: what `parla eval gen`'s instrument reads; *FaceMesh*: MediaPipe "
             f"{rec.get('mesh_version', '?')}.", "",
             "## The photo and its lip copies", "", "| portrait | source | nominal | dlib | FaceMesh |",
             "|---|---|---|---|---|"]  # fmt: skip
    summary: dict[str, dict] = {}
    for pid, rows in sorted(by.items()):
        for r in rows:
            lines.append(f"| {pid} | {r['source']} | {r['nominal']:.3f} | {r['dlib']:.3f} | "
                         + (f"{r['mesh']:.3f} |" if r["mesh"] is not None else "– |"))  # fmt: skip
        made = [r for r in rows if r["source"] != "photo"]  # the photo's nominal gap is dlib's own reading
        if made and (widest := max(made, key=lambda r: r["nominal"]))["nominal"] > 0.1:
            summary[pid] = {d: None if widest[d] is None else round(widest[d] / widest["nominal"], 3)
                            for d in ("dlib", "mesh")}  # fmt: skip
    lines += ["", "Read / drawn on the widest opened copy (photos with their lips together): "
              + ", ".join(f"{p} dlib {s['dlib']} FaceMesh {s['mesh']}" for p, s in summary.items()), ""]  # fmt: skip
    fits = []
    if rec["videos"]:
        lines += ["## Rendered clips: the detected opening against the driven one, frame by frame", "",
                  "| clip | frames | dlib slope | dlib r | FaceMesh slope | FaceMesh r |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for v in rec["videos"]:
            d, m = _fit(v["driven"], v["dlib"]), _fit(v["driven"], v["mesh"])
            fits.append({"clip": v["video"], "dlib": d, "mesh": m})
            lines.append(f"| {v['video']} | {d['frames']} | {d['slope']} | {d['r']} | {m['slope']} | {m['r']} |")
    out.mkdir(parents=True, exist_ok=True)
    if rec["videos"]:
        _sheet(work, rec["videos"], out / "sheet.jpg")
        lines += ["", "`sheet.jpg`: the mouth in each clip of the first speech clip at the 5th, 50th, 80th, 95th and "
                  "100th percentile of its driven opening, both detectors' readings written on."]  # fmt: skip
    doc = {"copies": rec["copies"], "widest_read_over_drawn": summary, "clips": fits,
           "mesh_version": rec.get("mesh_version")}  # fmt: skip
    (out / "crosscheck.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "crosscheck.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["render", "mesh", "report", "reread"], help="reread: dlib's readings again")
    ap.add_argument("--work", default="runs/mouth_crosscheck", help="images, videos and per-stage JSON")
    ap.add_argument("--out", default="benchmarks/results/mouth_crosscheck")
    ap.add_argument("--portraits", nargs="*", default=None, help="portraits whose copies are read (default: all 18)")
    ap.add_argument("--clips", nargs="*", default=["p01", "p02", "p03", "p04", "p07"], help="portraits animated")
    ap.add_argument("--speech", nargs="*", default=["s01"], help="eval speech prefixes for the clips (none: none)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each clip")
    ap.add_argument("--net", choices=["teacher", "student"], default="student")
    args = ap.parse_args()
    if args.stage in ("render", "mesh", "reread") and not EVAL.exists():
        print(f"error: {EVAL} not found (the eval data sits beside the repository)", file=sys.stderr)
        return 2
    return {"render": render, "mesh": mesh, "report": report, "reread": reread}[args.stage](args)


if __name__ == "__main__":
    sys.exit(main())
