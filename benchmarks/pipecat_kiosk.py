"""The Pipecat example (examples/pipecat_kiosk.py) end to end, with a WebRTC client in the same process (aiortc,
as a browser would connect): replies typed and interrupted in turn for a while, then a report of

- what the client received: video frames decoded per second and seconds of audio, over the whole run;
- the face service: frames sent and skipped (dropped), reply audio dropped, first frame of each reply after its
  first audio (the TTS's first frame), underruns;
- memory: the process's resident set every 5 s, its peak, and its growth after the first minute.

    python benchmarks/pipecat_kiosk.py --seconds 600 --out benchmarks/results/pipecat_kiosk

The example runs as its own process (its memory is read from /proc); the client decodes in this one, on the same
CPU, as a kiosk's browser would. Needs the [pipecat,tts] extras.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def rss_of(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MB of a process."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, kb = line.split()[:2]
            vals[key] = int(kb) / 1024
    return vals["VmRSS:"], vals["VmHWM:"]


async def run(args) -> dict:
    port = free_port()
    example = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "pipecat_kiosk.py"), str(args.portrait), "--port", str(port),
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert example.stdin is not None and example.stderr is not None
    log: list[str] = []

    async def read_log() -> None:
        async for line in example.stderr:
            log.append(line.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read_log())
    while not any("parla: open http" in line for line in log):
        if example.returncode is not None:
            raise SystemExit("the example did not start:\n" + "\n".join(log[-20:]))
        await asyncio.sleep(0.2)
    counts: dict = {"video": [], "audio_s": 0.0}
    stop = asyncio.Event()
    viewer = asyncio.create_task(client(f"http://127.0.0.1:{port}/", counts, stop))
    await asyncio.sleep(5.0)  # connected, idle
    t0 = time.monotonic()
    rss, said, interrupted = [], 0, 0
    next_rss = t0

    async def say(text: str) -> None:
        example.stdin.write((text + "\n").encode())
        await example.stdin.drain()

    while (now := time.monotonic()) - t0 < args.seconds:
        if now >= next_rss:
            rss.append((round(now - t0, 1), round(rss_of(example.pid)[0], 1)))
            next_rss += 5.0
        k = said
        await say(LINES[k % len(LINES)])
        said += 1
        if k % 2 == 1:  # every other reply is cut off after a second and a half, as a user who speaks up
            await asyncio.sleep(1.5)
            await say("")
            interrupted += 1
            await asyncio.sleep(1.5)
        else:
            await asyncio.sleep(args.gap)
    wall = time.monotonic() - t0
    peak = rss_of(example.pid)[1]
    stop.set()
    await viewer
    example.stdin.close()
    await example.wait()
    await reader
    stats = next((json.loads(x.split("parla: stats ", 1)[1]) for x in log if "parla: stats " in x), {})
    video = np.asarray(counts["video"])
    video = video[video >= t0]
    first = np.asarray(stats.get("first_frame_ms", []) or [np.nan])
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'cpu'})",
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
        "example_peak_rss_mb": round(peak, 1),
        **rss_summary(rss),
        "example_rss_mb": rss,
    }


def rss_summary(rss: list) -> dict:
    """Growth after the first minute: the median resident set of the last minute less that of the second (the
    samples swing by a few MB with the replies: a median per minute sees a trend, not a swing), and the range."""
    r = np.asarray(rss, float).reshape(-1, 2)
    second = r[(r[:, 0] >= 60) & (r[:, 0] < 120), 1]
    last = r[r[:, 0] >= max(120.0, r[-1, 0] - 60), 1] if len(r) else r[:0, 1]
    after = r[r[:, 0] >= 60, 1]
    if not len(second) or not len(last):
        return {"rss_growth_after_first_minute_mb": None, "rss_range_after_first_minute_mb": None}
    return {
        "rss_growth_after_first_minute_mb": round(float(np.median(last) - np.median(second)), 1),
        "rss_range_after_first_minute_mb": [round(float(after.min()), 1), round(float(after.max()), 1)],
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
    print(json.dumps({k: v for k, v in report.items() if k != "example_rss_mb"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
