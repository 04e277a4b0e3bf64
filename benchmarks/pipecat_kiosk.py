"""The Pipecat example (examples/pipecat_kiosk.py) end to end, with a WebRTC client in the same process (aiortc,
as a browser would connect): replies typed and interrupted in turn for a while, then a report of

- what the client received: video frames decoded per second and seconds of audio, over the whole run;
- the face service: frames sent and skipped (dropped), reply audio dropped, first frame of each reply after its
  first audio (the TTS's first frame), underruns;
- memory: the process's resident set every 5 s, its peak, and its growth after the first minute.

    python benchmarks/pipecat_kiosk.py --seconds 600 --out benchmarks/results/pipecat_kiosk

The client's decoding runs in the measured process too, so the memory and CPU figures are an upper bound for the
example alone. Needs the [pipecat,tts] extras.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

LINES = [
    "Hello, I am Parla, a face that runs on this computer without the internet.",
    "My lips follow the words I say, and the picture is marked as generated.",
    "Ask me anything, and interrupt me whenever you like.",
    "Maybe a bit of background: the model behind this face was trained on a small CPU.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client(url: str, counts: dict, stop: asyncio.Event) -> None:
    """A WebRTC viewer: offers audio and video (receive only, Pipecat's order), counts what it decodes."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")

    async def drain(track) -> None:
        try:
            while not stop.is_set():
                frame = await track.recv()
                if track.kind == "video":
                    counts["video"].append(time.monotonic())
                else:
                    counts["audio_s"] += frame.samples / frame.sample_rate
        except MediaStreamError:
            pass

    tasks = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(drain(track))))
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "api/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            answer = await r.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await stop.wait()
    for t in tasks:
        t.cancel()
    await pc.close()


async def run(args) -> dict:
    from pipecat_kiosk import Kiosk, serve

    from parla.edge.engine import peak_rss_mb, rss_mb

    kiosk = Kiosk(str(args.portrait), token=None)
    port = free_port()
    lines: asyncio.Queue = asyncio.Queue()
    server = asyncio.create_task(serve(kiosk, "127.0.0.1", port, lines))
    await asyncio.sleep(1.0)
    counts: dict = {"video": [], "audio_s": 0.0}
    stop = asyncio.Event()
    viewer = asyncio.create_task(client(f"http://127.0.0.1:{port}/", counts, stop))
    while kiosk.face is None or kiosk.face.session is None:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # connected, idle
    t0 = time.monotonic()
    rss, said, interrupted = [], 0, 0
    next_rss = t0
    while (now := time.monotonic()) - t0 < args.seconds:
        if now >= next_rss:
            rss.append((round(now - t0, 1), round(rss_mb(), 1)))
            next_rss += 5.0
        k = said
        await lines.put(LINES[k % len(LINES)])
        said += 1
        if k % 2 == 1:  # every other reply is cut off after a second and a half, as a user who speaks up
            await asyncio.sleep(1.5)
            await lines.put("")
            interrupted += 1
            await asyncio.sleep(1.5)
        else:
            await asyncio.sleep(args.gap)
    wall = time.monotonic() - t0
    face = kiosk.face
    stats = face.stats.summary() if face is not None and face.stats is not None else {}
    stop.set()
    await viewer
    await lines.put(None)
    await server
    video = np.asarray(counts["video"])
    video = video[video >= t0]
    first = np.asarray(stats.get("first_frame_ms", []) or [np.nan])
    after_minute = [m for t, m in rss if t >= 60]
    return {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "seconds": round(wall, 1),
        "replies": said,
        "interrupted": interrupted,
        "client_video_fps": round(len(video) / wall, 2),
        "client_audio_s": round(counts["audio_s"], 1),
        "service": stats,
        "first_frame_after_audio_ms": {
            "p50": round(float(np.nanmedian(first)), 1),
            "p95": round(float(np.nanpercentile(first, 95)), 1),
            "max": round(float(np.nanmax(first)), 1),
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_growth_after_first_minute_mb": round(max(after_minute) - after_minute[0], 1) if after_minute else None,
        "rss_mb": rss,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--portrait", type=Path, default=ROOT / "parla" / "assets" / "demo" / "portrait.jpg")
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--gap", type=float, default=6.0, help="seconds between a reply and the next one")
    p.add_argument("--out", type=Path, default=Path("parla-bench/pipecat_kiosk"))
    args = p.parse_args()
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mb"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
