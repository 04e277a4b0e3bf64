"""Issue 13: real-time `parla stream` on one portrait (default: the 1 MP eval portrait p10) at 30 fps for 60 s.

The eval speech clips are concatenated (in name order) into one file that is streamed at its own pace into an
mp4 (the file sink, with its x264 encoder on the same cores), and the run's statistics are written:

    python benchmarks/stream_portrait.py --out benchmarks/results/stream_p10

Writes stats.json (delivered / dropped frames, audio-to-frame p50/p95/p99, stage times, peak RSS) and
command.txt (the exact `parla stream` command run).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "data" / "eval"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portrait", default=str(EVAL / "portraits" / "p10_joyvasa_005.png"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--config", default="x86-cpu")
    ap.add_argument("--out", default="benchmarks/results/stream_p10")
    args = ap.parse_args()

    from parla.audio.io import SAMPLE_RATE, load_audio

    clips = sorted((EVAL / "speech").glob("s*"))
    if not clips:
        sys.exit(f"no eval speech under {EVAL / 'speech'}")
    audio, total = [], 0
    for c in clips:
        a = load_audio(c)
        audio.append(a)
        total += len(a)
        if total >= (args.seconds + 1) * SAMPLE_RATE:
            break
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes((np.clip(np.concatenate(audio), -1, 1) * 32767).astype("<i2").tobytes())
        cmd = [
            sys.executable, "-m", "parla", "stream", args.portrait, "--audio", str(wav), "--config", args.config,
            "--fps", str(args.fps), "--seconds", str(args.seconds), "--sink", f"file:{Path(tmp) / 'out.mp4'}",
            "--stats", str(out / "stats.json"),
        ]  # fmt: skip
        shown = shlex.join(["python", *cmd[1:]]).replace(tmp, "$TMP")
        (out / "command.txt").write_text(f"# speech: {', '.join(c.name for c in clips[: len(audio)])}\n{shown}\n")
        subprocess.run(cmd, check=True)
    s = json.loads((out / "stats.json").read_text())
    a2f = s["audio_to_frame_ms"]
    print(
        f"{Path(args.portrait).name}: {s['frames']} frames, {s['dropped']} dropped, {s['fps']} fps, "
        f"audio-to-frame p50 {a2f['p50']} / p95 {a2f['p95']} / p99 {a2f['p99']} ms, peak RSS {s['peak_rss_mb']} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
