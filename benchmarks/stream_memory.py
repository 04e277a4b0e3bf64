"""Issues 5 and 16: does a long stream keep flat memory? Streams N minutes of speech (the demo clip with pauses,
looped) through the real-time engine into an mp4, `--speed` times faster than real time, sampling RSS every 5 s.
The speech comes from a wav file decoded as it plays (`--source file`, what `parla stream --audio` does) or from
memory (`--source array`).

    python benchmarks/stream_memory.py --minutes 60 --speed 1 --out benchmarks/results/stream_memory_60

Writes stream_memory.json (RSS series, growth after the first minute, frames, drops, the mp4's audio and video
durations) and stream_memory.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(k, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=3.0)
    ap.add_argument("--config", default="x86-cpu")
    ap.add_argument(
        "--sink",
        choices=["file", "raw"],
        default="file",
        help="file: an mp4 (its muxer holds a growing sample index); raw: frames to a callback",
    )
    ap.add_argument("--source", choices=["file", "array"], default="file")
    ap.add_argument("--out", default="benchmarks/results/stream_memory")
    args = ap.parse_args()

    from parla.audio import load_audio
    from parla.edge.avatar import Avatar
    from parla.edge.sinks import FileSink, RawSink
    from parla.edge.sources import ArraySource, FileSource
    from parla.export.parity import machine

    demo = ROOT / "parla" / "assets" / "demo"
    speech = load_audio(demo / "speech.wav")
    unit = np.concatenate([speech, np.zeros(16_000 * 3, np.float32)])  # speech, then 3 s of nobody speaking
    audio = np.tile(unit, int(np.ceil(args.minutes * 60 * 16_000 / len(unit))))[: int(args.minutes * 60 * 16_000)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, Avatar.from_image(demo / "portrait.jpg", args.config) as av:
        t = time.time()
        sink = (
            FileSink(Path(tmp) / "long.mp4", av.config.video.fps, av.metadata)
            if args.sink == "file"
            else RawSink(callback=lambda frame, index: None)
        )
        if args.source == "file":
            from parla.audio.io import SAMPLE_RATE

            wav = Path(tmp) / "long.wav"
            _write_wav(wav, audio, SAMPLE_RATE)
            del audio  # the stream reads the file as it plays
            source = FileSource(wav, av.config.audio.chunk_ms, speed=args.speed)
        else:
            source = ArraySource(audio, av.config.audio.chunk_ms, speed=args.speed)
        stats = av.run(source, sink)
        wall = time.time() - t
        mp4_mb, durations = 0.0, {}
        if args.sink == "file":
            mp4_mb = (Path(tmp) / "long.mp4").stat().st_size / 2**20
            durations = _durations(Path(tmp) / "long.mp4")
    series = list(stats.rss_mb)
    rss = np.array([r for _, r in series])
    first_min = rss[: max(1, len(rss) // 10)]
    t_s = np.array([s for s, _ in series])
    after = rss[t_s >= 60.0]
    growth = round(float(after.max() - after[0]), 1) if len(after) else None
    report = {
        "machine": machine(),
        "config": args.config,
        "sink": args.sink,
        "audio_minutes": args.minutes,
        "speed": args.speed,
        "wall_s": round(wall, 1),
        "frames": stats.frames,
        "dropped": stats.dropped,
        "mp4_mb": round(mp4_mb, 1),
        "rss_mb_first_tenth_median": float(np.median(first_min)),
        "rss_mb_last": float(rss[-1]),
        "rss_mb_max": float(rss.max()),
        "rss_drift_mb_last_minus_first_tenth": round(float(rss[-1] - np.median(first_min)), 1),
        "rss_growth_mb_after_first_minute": growth,
        "source": args.source,
        **durations,
        "summary": stats.summary(),
        "rss_series": series,
    }
    (out / "stream_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([s for s, _ in series], rss)
        ax.set_xlabel("wall seconds")
        ax.set_ylabel("RSS (MB)")
        ax.set_title(f"{args.minutes:g} min of audio at {args.speed:g}x, {args.config}")
        fig.tight_layout()
        fig.savefig(out / "stream_memory.png", dpi=100)
    except ImportError:
        pass
    print(json.dumps({k: v for k, v in report.items() if k != "rss_series"}, indent=2))
    return 0


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for i in range(0, len(audio), rate * 60):
            w.writeframes((np.clip(audio[i : i + rate * 60], -1, 1) * 32767).astype("<i2").tobytes())


def _durations(mp4: Path) -> dict:
    """The audio and video streams' durations of the recording (from the packets, as a player sees them)."""
    from parla.media.video import packet_durations, probe_video

    video_s, audio_s = packet_durations(mp4)
    fps = probe_video(mp4).fps
    diff = abs(video_s - (audio_s or 0.0)) * fps
    return {"video_s": round(video_s, 3), "audio_s": audio_s and round(audio_s, 3), "av_diff_frames": round(diff, 2)}


if __name__ == "__main__":
    sys.exit(main())
