"""Issue 14 (acceptance 5): does the mouth close for /p b m/? Speech with known phoneme timing (eSpeak NG's own
phoneme events, `pip install 'parla[tts]'`) drives the shipped motion model on a portrait's landmarks, exactly
as `parla animate` would (the whole clip known ahead; with --tts-timing also the TTS's phoneme timing, as
`parla animate --text` does); for each /p b m/ the lips count as closed if some video
frame within ±40 ms of the phoneme's interval has an inner-lip gap ≤ CLOSED_IOD.

    python benchmarks/bilabial_closure.py --out benchmarks/results/bilabial_closure

Writes closure.json (per sentence and voice: bilabials, closed, the gap at each) and prints the rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CLOSED_IOD = 0.025  # inner-lip gap / inter-ocular distance at or under which the lips touch
TOLERANCE_S = 0.040
SENTENCES = (
    "Bob put a map by the pump.",
    "My mom made maple pie, but Paul bought a big blue boat.",
    "Please remember to bring both umbrellas home by morning.",
    "The baby played by the pond, and a puppy bumped a ball.",
    "Maybe Pam will buy more plums at the market.",
    "Plan a simple map, then move the lamp above the table.",
)
VOICES = ("en-us", "en-gb-x-rp", "fr", "de", "es")


def closures(avatar, speech, fps: float, use_timing: bool) -> list[dict]:
    from parla.face.landmarks import mouth_opening

    p = avatar.portrait
    timing = [(ph.start_s, ph.end_s) for ph in speech.phonemes if ph.bilabial] if use_timing else None
    motion = avatar.new_motion(known_audio=speech.audio, closures=timing)
    n = int(round(len(speech.audio) / 16_000 * fps))
    fms = motion.push(speech.audio) + motion.flush(len(speech.audio))
    fms = [f for f in fms if f.index < n]
    basis = avatar.settings.basis
    gaps = mouth_opening(
        np.stack([basis.drive(p.landmarks, f.coeffs, np.zeros(6), 0.0, f.mouth_close, f.mouth_rest) for f in fms])
    )
    times = np.array([f.index / fps for f in fms])
    out = []
    for ph in speech.phonemes:
        if not ph.bilabial:
            continue
        near = (times >= ph.start_s - TOLERANCE_S) & (times <= ph.end_s + TOLERANCE_S)
        gap = float(gaps[near].min()) if near.any() else float("nan")
        out.append({"phoneme": ph.symbol, "start_s": round(ph.start_s, 3), "gap": round(gap, 4)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portrait", help="default: the bundled demo portrait")
    ap.add_argument("--config", default="x86-cpu")
    ap.add_argument("--model", help="a model folder (default: the config's); runs it on torch")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--voices", nargs="*", default=list(VOICES))
    ap.add_argument(
        "--tts-timing",
        action="store_true",
        help="close the lips from the TTS's phoneme events (as `parla animate --text` does), not from audio alone",
    )
    ap.add_argument("--out", default="benchmarks/results/bilabial_closure")
    args = ap.parse_args()

    from parla.assets import demo_file
    from parla.audio.tts import speak
    from parla.edge.avatar import Avatar
    from parla.edge.config import load_config

    over = {"video.fps": args.fps}
    if args.model:
        over.update(model=args.model, backend="torch", device="cpu", precision="fp32")
    cfg = load_config(args.config, over)
    rows = []
    with Avatar.from_image(args.portrait or demo_file("portrait.jpg"), cfg) as av:
        for voice in args.voices:
            for text in SENTENCES:
                events = closures(av, speak(text, voice=voice), args.fps, args.tts_timing)
                closed = sum(e["gap"] <= CLOSED_IOD for e in events)
                rows.append(
                    {"voice": voice, "text": text, "bilabials": len(events), "closed": closed, "events": events}
                )
    total, closed = sum(r["bilabials"] for r in rows), sum(r["closed"] for r in rows)
    per_voice = {}
    for v in args.voices:
        mine = [r for r in rows if r["voice"] == v]
        per_voice[v] = round(sum(r["closed"] for r in mine) / max(1, sum(r["bilabials"] for r in mine)), 3)
    summary = {"bilabials": total, "closed": closed, "rate": round(closed / max(total, 1), 3), "per_voice": per_voice}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "closure.json").write_text(
        json.dumps({"summary": summary, "closed_iod": CLOSED_IOD, "rows": rows}, indent=1)
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
