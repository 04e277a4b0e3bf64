"""Issue 15: glass-to-glass latency and audio/video offset of the kiosk page, measured in a real browser.

`parla stream` on the demo portrait and speech (x86-cpu config: OpenVINO INT8) into the WebRTC kiosk page, opened
by headless Chromium on the same machine. Every frame carries its number in a 16-cell strip (measurement mode
only); the page reads it back when the frame is displayed (`requestVideoFrameCallback`'s expected display time)
and reports it with the browser's WebRTC statistics. Per frame:

    glass-to-glass = (displayed − handed to the sink) + the engine's audio-to-frame latency of that frame

i.e. from the moment the frame's audio reached Parla to the moment the browser put the frame on screen. The
audio/video offset is the difference of the two tracks' `estimatedPlayoutTimestamp` in the same statistics
report (positive: the picture plays after its sound).

    python benchmarks/kiosk_latency.py --seconds 30 --out benchmarks/results/kiosk_latency
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--config", default="x86-cpu")
    ap.add_argument("--portrait", default=None)
    ap.add_argument("--audio", default=None)
    ap.add_argument("--out", default="benchmarks/results/kiosk_latency")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        sys.exit("needs Chromium (apt install chromium)")

    from parla.assets import demo_file
    from parla.audio import load_audio
    from parla.edge.avatar import Avatar
    from parla.edge.sources import ArraySource
    from parla.edge.web import WebRTCSink
    from parla.export.parity import machine

    speech = load_audio(args.audio or demo_file("speech.wav"))
    unit = np.concatenate([speech, np.zeros(16_000, np.float32)])
    audio = np.tile(unit, int(np.ceil(args.seconds * 16_000 / len(unit))))[: int(args.seconds * 16_000)]
    written: dict[int, float] = {}
    order: list[int] = []

    class Timed(WebRTCSink):
        def write(self, frame, index):
            super().write(frame, index)
            written[index] = time.time() * 1e3
            order.append(index)

    with Avatar.from_image(args.portrait or demo_file("portrait.jpg"), args.config) as av:
        fps = av.config.video.fps
        sink = Timed(fps, "127.0.0.1", 0, mark=True)
        profile = tempfile.mkdtemp()
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}", sink.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t0 = time.monotonic()
        while not sink.stats:  # the page has connected (it reports once its connection is up)
            if time.monotonic() - t0 > 60:
                sys.exit("the page never played")
            time.sleep(0.2)
        source = ArraySource(audio, av.config.audio.chunk_ms)
        source.lead_s = av.lead_for(source)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(stats=av.run(source, sink)))
        runner.start()
        runner.join()
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
    stats = result["stats"]
    a2f = dict(zip(order, stats.latency_ms, strict=False))
    shown = {}
    reports = list(sink.stats)
    for r in reports:
        for index, at in r.get("shown", []):
            shown.setdefault(index, at)  # the first display of each frame
    g2g = [shown[i] - written[i] + a2f[i] for i in shown if i in written and i in a2f]
    net = [shown[i] - written[i] for i in shown if i in written]
    offsets = [
        r["video"]["estimatedPlayoutTimestamp"] - r["audio"]["estimatedPlayoutTimestamp"]
        for r in reports
        if r.get("video", {}).get("estimatedPlayoutTimestamp") and r.get("audio", {}).get("estimatedPlayoutTimestamp")
    ]
    decoded = [r for r in reports if r.get("video", {}).get("framesDecoded")]
    span = (decoded[-1]["t"] - decoded[0]["t"]) / 1e3 if len(decoded) > 1 else 0.0

    def pct(x):
        return {f"p{q}": round(float(np.percentile(x, q)), 1) for q in (5, 50, 95)} if len(x) else {}

    report = {
        "machine": machine(),
        "config": args.config,
        "seconds": args.seconds,
        "frames_rendered": stats.frames,
        "dropped": stats.dropped,
        "frames_displayed_identified": len(shown),
        "decoded_fps": round((decoded[-1]["video"]["framesDecoded"] - decoded[0]["video"]["framesDecoded"]) / span, 2)
        if span
        else None,
        "audio_samples_per_s": round(
            (decoded[-1]["audio"].get("totalSamplesReceived", 0) - decoded[0]["audio"].get("totalSamplesReceived", 0))
            / span
        )
        if span
        else None,
        "engine_audio_to_frame_ms": pct(list(stats.latency_ms)),
        "sink_to_display_ms": pct(net),
        "glass_to_glass_ms": pct(g2g),
        "av_offset_ms": pct(offsets),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kiosk_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
