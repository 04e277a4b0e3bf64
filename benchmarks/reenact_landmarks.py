"""Self-reenactment in landmark space: where does the mouth error come from?

For each video: the real landmark track, and the driving landmarks the pipeline would hand to the warp (first
frame as the portrait, the clip's own audio), compared with the same mouth landmark distance as
`parla eval reenact` (parla.metrics.reenact.mouth_lmd). No rendering, so this separates the motion model from
the renderer: arms vary the articulation multiplier and the head pose; "rendered" is the full `parla eval reenact`
figure when its JSON is given.

    python benchmarks/reenact_landmarks.py ../shared/data/eval/videos --cache runs/diag/tracks \
        [--model DIR] [--reenact benchmarks/results/eval_reenact/eval_reenact.json] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from parla.face.tracks import clip_audio, list_videos
from parla.metrics.reenact import mouth_lmd


def real_track(video: Path, cache: Path) -> tuple[np.ndarray, float]:
    from parla.face.tracks import track_video

    cache.mkdir(parents=True, exist_ok=True)
    f = cache / f"{video.stem}.npz"
    if f.is_file():
        with np.load(f) as z:
            return z["landmarks"], float(z["fps"])
    t = track_video(video, progress=True)
    np.savez(f, landmarks=t.landmarks, fps=t.fps)
    return t.landmarks, t.fps


def driven(basis, first: np.ndarray, motion, mult: float, pose: bool) -> np.ndarray:
    """Driving landmarks (image pixels are fine: the mouth shape is centred and scaled by the inter-ocular
    distance) for every frame of the synthesizer's output ``motion`` (a list of FrameMotion)."""
    return np.stack(
        [
            basis.drive(
                first, fm.coeffs * mult, fm.pose if pose else np.zeros(6), fm.blink, fm.mouth_close, fm.mouth_rest
            )
            for fm in motion
        ]
    )


def synthesize(settings, lips, audio: np.ndarray, fps: float, n: int) -> list:
    """The runtime's synthesizer over a whole clip (what ``parla animate`` drives the face with)."""
    from parla.edge.synth import MotionSynth

    phonemes = None
    if settings.phonemes:  # a phoneme front-end: the whole clip is known, as for `parla animate`
        from parla.audio import phonemes as ph

        enc = ph.PhonemeEncoder(outputs=ph.outputs_for(settings.phonemes))
        phonemes = ph.KnownPhonemes(ph.encode(enc, audio), enc.silence)
    synth = MotionSynth(settings, lips.run, fps=fps, seed=0, phonemes=phonemes)
    return (synth.push(audio) + synth.flush(len(audio)))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--cache", default="runs/diag/tracks")
    ap.add_argument("--model")
    ap.add_argument("--mult", default="0,0.25,0.5,0.75,1.0", help="multipliers of the shipped articulation")
    ap.add_argument("--reenact", help="a `parla eval reenact --json` report, for the rendered column")
    ap.add_argument("--rest-from", help="a prepared training set: fit the basis's rest opening on it first")
    ap.add_argument("--json")
    args = ap.parse_args()

    from parla.edge.backends.torch_backend import TorchBackend
    from parla.edge.synth import MotionSettings
    from parla.modelfolder import ModelFolder

    folder = ModelFolder(args.model)
    settings = MotionSettings.from_folder(folder)
    lips = TorchBackend(folder.path, "cpu", kind="lips")
    basis = settings.basis
    if args.rest_from:
        from parla.training.basis import fit_rest, load_clip

        clips = [load_clip(f) for f in sorted(Path(args.rest_from, "clips").glob("*.npz"))]
        basis.meta.update(fit_rest([c["landmarks"][c["valid"]] for c in clips], basis))
    mults = [float(m) for m in args.mult.split(",")]
    rendered = {}
    if args.reenact:
        rendered = {c["file"]: c["lmd"] for c in json.loads(Path(args.reenact).read_text())["clips"]}
    rows = []
    for video in list_videos(args.folder):
        audio, _ = clip_audio(video, None)
        if audio is None:
            continue
        lms, fps = real_track(video, Path(args.cache))
        ok = np.flatnonzero(~np.isnan(lms[:, 0, 0]))
        if not len(ok) or ok[0] != 0:
            continue
        motion = synthesize(settings, lips, audio, fps, len(lms))
        row = {
            "file": video.name,
            "still": mouth_lmd(np.repeat(lms[:1], len(lms), 0), lms),
            "rendered": rendered.get(video.name),
        }
        for m in mults:
            row[f"x{m:g}"] = mouth_lmd(driven(basis, lms[0], motion, m, True), lms)
            row[f"x{m:g}_nopose"] = mouth_lmd(driven(basis, lms[0], motion, m, False), lms)
        rows.append(row)
        print(video.name, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}, flush=True)
    keys = [k for k in rows[0] if k != "file"]
    mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys}
    print("mean", {k: round(v, 4) for k, v in mean.items()})
    print("improvement over still", {k: round(1 - v / mean["still"], 3) for k, v in mean.items()})
    if args.json:
        Path(args.json).write_text(
            json.dumps({"clips": rows, "mean": mean, "articulation": settings.articulation}, indent=2)
        )


if __name__ == "__main__":
    main()
