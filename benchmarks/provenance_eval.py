"""Both provenance signals under what happens to a video after it leaves Parla.

Every eval portrait × the three eval speech clips (s01, s05, s06; 8 s each) is rendered by the edge engine
(`parla animate --backend auto`, watermark and Content Credentials on), then transformed:

    crf23, crf28, crf35     re-encode (libx264 medium) at that CRF
    half, quarter           scaled to 1/2 and 1/4 (CRF 23)
    crop10                  10 % cut from every side (CRF 23)
    fps30to25               rendered at 30 fps, captured at 25 (nearest earlier frame; CRF 23)
    screen                  a screen capture: bilinear 0.9x resize, Gaussian blur σ 0.8, noise σ 2 (CRF 23)
    phone                   a phone filming the screen: a perspective warp (corners moved up to 4 %), gamma 0.8,
                            Gaussian blur σ 1.0, noise σ 3, resampled to 0.75x (CRF 28)
    strip                   remuxed (stream copy into a new mp4): the metadata and the manifest are gone

and each result goes through `parla verify`'s two readers: the watermark (found or not) and the C2PA manifest
(valid / invalid / absent). False positives: `verify` on every real video of ../shared/data/eval/videos and
../shared/data/train/videos. Eval data is only measured here, never trained on.

    python benchmarks/provenance_eval.py --out benchmarks/results/provenance [--portraits p01 p02] [--speech s01]

Split over processes (one per core), then joined:

    python benchmarks/provenance_eval.py --portraits p01 … p09 --skip-real --out A &
    python benchmarks/provenance_eval.py --portraits p10 … p18 --out B
    python benchmarks/provenance_eval.py --merge A/provenance.json B/provenance.json --out benchmarks/results/provenance
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
SPEECH = {"s01": "s01_en_sadtalker_RD_Radio31_000", "s05": "s05_fr_geneface_MacronSpeech",
          "s06": "s06_zh_sadtalker_chinese_news"}  # fmt: skip
TRANSFORMS = ("original", "crf23", "crf28", "crf35", "half", "quarter", "crop10", "fps30to25", "screen", "phone",
              "strip")  # fmt: skip


def write(frames: list[np.ndarray], path: Path, fps: float, *, crf: int = 23) -> Path:
    from parla.media.video import VideoWriter

    with VideoWriter(path, fps, crf=crf, preset="medium", tune=None) as w:
        for f in frames:
            w.write(f)
    return path


def transform(name: str, frames: list[np.ndarray], fps: float, out: Path, src: Path) -> Path:
    import cv2

    def resized(s: float) -> list[np.ndarray]:
        h, w = frames[0].shape[:2]
        size = (max(2, round(w * s) // 2 * 2), max(2, round(h * s) // 2 * 2))
        return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]

    if name.startswith("crf"):
        return write(frames, out, fps, crf=int(name[3:]))
    if name in ("half", "quarter"):
        return write(resized(0.5 if name == "half" else 0.25), out, fps)
    if name == "crop10":
        h, w = frames[0].shape[:2]
        dy, dx = h // 10, w // 10
        return write([f[dy : h - dy, dx : w - dx] for f in frames], out, fps)
    if name == "fps30to25":
        n = int(len(frames) * 25 / fps)
        return write([frames[min(int(i * fps / 25), len(frames) - 1)] for i in range(n)], out, 25)
    if name == "screen":
        rng = np.random.default_rng(0)
        shot = [cv2.GaussianBlur(f, (0, 0), 0.8) for f in resized(0.9)]
        noisy = [np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8) for f in shot]
        return write(noisy, out, fps)
    if name == "phone":
        return write(phone_capture(frames), out, fps, crf=28)
    if name == "strip":
        from parla.media.video import remux

        return remux(src, out)
    raise ValueError(name)


def phone_capture(frames: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """A phone filming the screen: one perspective (the phone held still), gamma, blur, sensor noise, 0.75x."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = frames[0].shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-0.04, 0.04, (4, 2)) * [w, h]).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    size = (max(2, round(w * 0.75) // 2 * 2), max(2, round(h * 0.75) // 2 * 2))
    lut = (255 * (np.arange(256) / 255) ** 0.8).astype(np.uint8)
    out = []
    for f in frames:
        g = cv2.warpPerspective(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        g = cv2.GaussianBlur(cv2.LUT(g, lut), (0, 0), 1.0)
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
        out.append(np.clip(g + rng.normal(0, 3, g.shape), 0, 255).astype(np.uint8))
    return out


def check(path: Path) -> dict:
    from parla.media.credentials import available, read_credentials
    from parla.watermark import verify

    t = time.perf_counter()
    r = verify(path)
    wm_s = time.perf_counter() - t
    cred = read_credentials(path).state if available() else "not checked"
    return {"watermark": r.found, "z": round(r.psr, 1), "confidence": r.confidence, "frames": r.frames,
            "credentials": cred, "verify_s": round(wm_s, 2)}  # fmt: skip


def generated(portraits: list[Path], speeches: list[str], tmp: Path) -> list[dict]:
    from parla.edge.avatar import animate
    from parla.media.video import iter_frames

    rows = []
    for p in portraits:
        for s in speeches:
            wav = next((DATA / "eval" / "speech").glob(SPEECH[s] + ".*"))
            row = {"portrait": p.stem, "speech": s}
            for fps in (25.0, 30.0):
                video = animate(p, wav, tmp / f"{p.stem}_{s}_{int(fps)}.mp4", fps=fps, backend="auto", show=False)
                frames = [f for _, f in iter_frames(video)]
                for name in TRANSFORMS:
                    if (name == "fps30to25") != (fps == 30.0):
                        continue
                    out = video if name == "original" else transform(name, frames, fps, tmp / f"t_{name}.mp4", video)
                    row[name] = check(out)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portraits", nargs="*", default=None)
    ap.add_argument("--speech", nargs="*", default=list(SPEECH))
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/provenance")
    ap.add_argument("--merge", nargs="*", default=None, help="join these provenance.json files instead of running")
    args = ap.parse_args()
    from parla.export.parity import machine

    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        return report([r for p in parts for r in p["rows"]], [r for p in parts for r in p["real"]], Path(args.out),
                      parts[0]["machine"])  # fmt: skip
    portraits = sorted((DATA / "eval" / "portraits").iterdir())
    if args.portraits:
        portraits = [p for p in portraits if p.stem.split("_")[0] in args.portraits]
    with tempfile.TemporaryDirectory() as tmp:
        rows = generated(portraits, args.speech, Path(tmp))
    real = []
    if not args.skip_real:
        for folder in (DATA / "eval" / "videos", DATA / "train" / "videos"):
            for v in sorted(folder.iterdir()):
                if v.suffix.lower() in (".mp4", ".mpg", ".mov", ".mkv", ".webm", ".avi"):
                    real.append({"video": f"{folder.parent.name}/{v.name}", **check(v)})
    return report(rows, real, Path(args.out), machine())


def markdown(summary: dict, machine: str) -> str:
    names = [n for n in TRANSFORMS if summary[n]["clips"]]
    head = "| | " + " | ".join(names) + " |"
    found = "| found | " + " | ".join(f"{summary[n]['watermark_found']}/{summary[n]['clips']}" for n in names) + " |"
    zmin = "| lowest z | " + " | ".join(str(summary[n]["z_min"]) for n in names) + " |"
    cmin = "| lowest probability | " + " | ".join(f"{summary[n]['confidence_min']:.4f}" for n in names) + " |"
    secs = "| verify, median s | " + " | ".join(str(summary[n]["verify_s_median"]) for n in names) + " |"
    sep = "|---" * (len(names) + 1) + "|"
    return f"Machine: {machine}\n\n" + "\n".join([head, sep, found, zmin, cmin, secs]) + "\n"


def report(rows: list[dict], real: list[dict], out: Path, machine: str) -> int:
    summary = {}
    for name in TRANSFORMS:
        got = [r[name] for r in rows if name in r]
        summary[name] = {
            "clips": len(got),
            "watermark_found": sum(g["watermark"] for g in got),
            "rate": round(sum(g["watermark"] for g in got) / max(len(got), 1), 4),
            "credentials": {
                k: sum(g["credentials"] == k for g in got) for k in sorted({g["credentials"] for g in got})
            },
            "verify_s_median": round(float(np.median([g["verify_s"] for g in got])), 2) if got else None,
            "confidence_min": min((g.get("confidence", 0.0) for g in got), default=None),
            "z_min": min((g["z"] for g in got), default=None),
        }
    result = {
        "machine": machine,
        "summary": summary,
        "real_videos": len(real),
        "real_flagged": sum(r["watermark"] for r in real),
        "real_with_credentials": sum(r["credentials"] in ("Valid", "Trusted", "Invalid") for r in real),
        "rows": rows,
        "real": real,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "provenance.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "provenance.md").write_text(markdown(summary, machine))
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "real")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
