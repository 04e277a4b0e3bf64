"""ParlaVideoService in a real Pipecat pipeline (no mocks of Pipecat): a scripted TTS sends two replies at 24 kHz
faster than real time, the user interrupts the first halfway; and hostile use (odd rates, empty frames, a storm, an
interruption before any speech, a consumer that stalls)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="the [pipecat] extra is not installed")

from pipecat.frames.frames import (  # noqa: E402
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

RATE = 24_000
FPS = 25


class Sink(FrameProcessor):
    """The end of the pipeline: every downstream frame with its arrival time; optionally stalls once."""

    def __init__(self, stall_at: int | None = None, stall_s: float = 0.0) -> None:
        super().__init__(enable_direct_mode=True)
        self.got: list[tuple[float, Frame]] = []
        self.stall_at, self.stall_s = stall_at, stall_s

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and not isinstance(frame, StartFrame):
            self.got.append((time.monotonic(), frame))
            images = sum(isinstance(f, OutputImageRawFrame) for _, f in self.got)
            if self.stall_at is not None and images == self.stall_at:
                await asyncio.sleep(self.stall_s)  # the consumer stops reading for a while
        await self.push_frame(frame, direction)


@pytest.fixture(scope="module")
def avatar(face_path):
    from parla.edge import Avatar

    with Avatar.from_image(face_path, "x86-cpu") as a:
        yield a


@pytest.fixture(scope="module")
def replies(speech) -> tuple[np.ndarray, np.ndarray]:
    from parla.audio.io import Resampler

    x = (np.clip(Resampler(16_000, rate=RATE).push(speech), -1, 1) * 32767).astype(np.int16)
    return x[: RATE * 4], x[RATE * 4 : RATE * 6]  # 4 s (interrupted at 2 s) and 2 s


def clock_fps(images) -> float:
    """Frames per second of wall time: the frame indices the clock advanced (images sent and frames skipped)
    between the most punctual image of the first third and the most punctual of the last ten (a frame is never
    sent before its time, only after it where the machine was busy, as with a reply's start)."""
    t = np.array([t for t, _ in images])
    pts = np.array([f.pts for _, f in images]) / 1e9
    a = int(np.argmin((t - pts)[: len(t) // 3]))
    b = len(t) - 10 + int(np.argmin((t - pts)[-10:]))
    return (pts[b] - pts[a]) * FPS / (t[b] - t[a])


def tts_frames(pcm: np.ndarray, context: str, chunk: int = 4_800) -> list[Frame]:
    """What a TTS service emits for one reply: started, its audio in 200-ms chunks, stopped."""
    out: list[Frame] = [TTSStartedFrame(context_id=context)]
    out += [
        TTSAudioRawFrame(pcm[i : i + chunk].tobytes(), RATE, 1, context_id=context) for i in range(0, len(pcm), chunk)
    ]
    return out + [TTSStoppedFrame(context_id=context)]


async def run(service, script, sink=None) -> Sink:
    """``script``: (seconds after the pipeline started, frames) steps, queued in order; then EndFrame."""
    sink = sink or Sink()
    worker = PipelineWorker(
        Pipeline([service, sink]), params=PipelineParams(audio_out_sample_rate=RATE), cancel_on_idle_timeout=False
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame):
        started.set()

    async def feed():
        await asyncio.wait_for(started.wait(), timeout=60)
        t0 = time.monotonic()
        for at, frames in script:
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            for f in frames:
                await worker.queue_frame(f)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())
    return sink


def test_two_replies_an_interruption_and_idle_frames(avatar, replies):
    from parla.integrations.pipecat import ParlaVideoService

    first, second = replies
    service = ParlaVideoService(avatar, max_lag_frames=FPS)  # a busy machine catches up rather than skips
    script = [
        (1.0, tts_frames(first, "r1")),  # a 4-s reply, sent at once (faster than real time)
        (3.0, [InterruptionFrame()]),  # the user speaks 2 s into it
        (4.5, [TextFrame("passes through")] + tts_frames(second, "r2")),
        (9.5, []),  # idle at the end: the clock has caught up with the reply start's compute
    ]
    sink = asyncio.run(run(service, script))
    got = sink.got
    images = [(t, f) for t, f in got if isinstance(f, OutputImageRawFrame)]
    audio = [(t, f) for t, f in got if isinstance(f, TTSAudioRawFrame)]
    stats = service.stats

    # the video clock: 25 fps over the run, every frame on the 40-ms grid
    pts = np.array([f.pts for _, f in images]) / 1e9
    assert np.allclose(np.diff(pts) * FPS, np.round(np.diff(pts) * FPS))  # on the frame grid
    assert clock_fps(images) == pytest.approx(FPS, abs=0.5)

    # every audio frame is one video frame's audio, sent just before its image: offset 0 in timestamps, and
    # under a frame apart on the clock
    index = {f.pts: (t, i) for i, (t, f) in enumerate(images)}
    for t, a in audio:
        assert a.num_frames == RATE // FPS and a.pts in index
        assert 0 <= index[a.pts][0] - t <= 0.040

    # the second reply: its audio downstream is exactly the input, sample for sample
    r2 = b"".join(a.audio for _, a in audio if a.context_id == "r2")
    out = np.frombuffer(r2, np.int16)
    np.testing.assert_array_equal(out[: len(second)], second)
    assert not out[len(second) :].any() and len(out) - len(second) < RATE // FPS

    # the interruption: none of the first reply's audio after it, at most 2 frames with audio of it
    t_int = next(t for t, f in got if isinstance(f, InterruptionFrame))
    r1_after = [a for t, a in audio if a.context_id == "r1" and t > t_int]
    assert not r1_after
    first_pts_after = next(f.pts for t, f in images if t > t_int)
    speaking_after = [a for _, a in audio if a.context_id == "r1" and a.pts >= first_pts_after]
    assert len(speaking_after) <= 2
    r1 = b"".join(a.audio for _, a in audio if a.context_id == "r1")
    assert 0.8 * RATE * 2 <= len(r1) <= 2.5 * RATE * 2  # up to 2 s of the 4-s reply was shown (less on a busy CPU)

    # idle frames between the replies (images without audio), and before the first
    spoken = {a.pts for _, a in audio}
    idle = [f.pts for _, f in images if f.pts not in spoken]
    assert sum(1 for p in idle if p < min(spoken)) >= 10
    r2_start = min(a.pts for _, a in audio if a.context_id == "r2")
    assert sum(1 for p in idle if first_pts_after <= p < r2_start) >= 25
    # other frames pass through, the TTS bounds go on (each reply's end after its audio)
    assert any(isinstance(f, TextFrame) and f.text == "passes through" for _, f in got)
    stops = [t for t, f in got if isinstance(f, TTSStoppedFrame) and f.context_id == "r2"]
    last_r2 = max(t for t, a in audio if a.context_id == "r2")
    assert len(stops) == 1 and stops[0] >= last_r2
    assert service.errors == 0 and stats.underruns == 0


def test_hostile_frames_never_escape_into_the_pipeline(avatar, replies):
    """Odd rates, empty audio, a minute of audio at once, an interruption before any speech, a consumer that
    stalls for a second: no exception, bounded pending audio, the face goes on at 25 fps."""
    from parla.integrations.pipecat import ParlaVideoService

    first, _ = replies
    service = ParlaVideoService(avatar, max_pending_s=10.0, max_lag_frames=8)
    odd = TTSAudioRawFrame(first[:11_025].tobytes(), 11_025, 1)  # played as 11.025 kHz
    storm = [TTSAudioRawFrame(first[:RATE].tobytes(), RATE, 1) for _ in range(60)]  # a minute in one go
    script = [
        (0.2, [InterruptionFrame()]),  # before any speech
        (0.4, [TTSAudioRawFrame(b"", RATE, 1), TTSAudioRawFrame(b"\x01", 0, 1), odd, TTSStoppedFrame()]),
        (1.0, [TTSStartedFrame(), *storm, TTSStoppedFrame()]),
        (2.0, [InterruptionFrame()]),
        (5.0, []),  # the consumer stalls 1 s at frame 60 (2.4 s), then the clock catches up
    ]
    sink = asyncio.run(run(service, script, Sink(stall_at=60, stall_s=1.0)))
    images = [(t, f) for t, f in sink.got if isinstance(f, OutputImageRawFrame)]
    stats = service.stats
    assert service.errors == 1  # the frame at 0 Hz: dropped and logged
    assert stats.dropped_audio_s >= 49  # the storm beyond 10 s pending (and what the stall skipped)
    assert stats.dropped >= 0.8 * FPS  # the stalled second was skipped, not queued
    assert clock_fps(images) == pytest.approx(FPS, abs=0.5)
    assert service.session is not None and service.session.pending_s == 0  # the interruption dropped the rest


# the example: examples/pipecat_kiosk.py --------------------------------------------------------------------------
def example_module():
    import importlib.util
    from pathlib import Path

    pytest.importorskip("aiortc")
    pytest.importorskip("espeakng_loader", reason="the [tts] extra is not installed")
    path = Path(__file__).resolve().parents[1] / "examples" / "pipecat_kiosk.py"
    spec = importlib.util.spec_from_file_location("pipecat_kiosk", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def serve_example(mod, kiosk, seconds: float, viewer, lines_at: list[tuple[float, str]]):
    """The example's server on a free port, a viewer coroutine (given the page's address), text lines on cue."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines: asyncio.Queue = asyncio.Queue()
    server = asyncio.create_task(mod.serve(kiosk, "127.0.0.1", port, lines))
    await asyncio.sleep(0.5)
    url = f"http://127.0.0.1:{port}/" + (f"?token={kiosk.token}" if kiosk.token else "")
    watch = asyncio.create_task(viewer(url))
    while kiosk.face is None or kiosk.face.session is None:
        await asyncio.sleep(0.1)
    t0 = time.monotonic()
    for at, line in lines_at:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        await lines.put(line)
    await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
    result = await watch_result(watch)
    await lines.put(None)
    await server
    return result


async def watch_result(task):
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


def test_the_example_streams_picture_and_reply_audio_over_webrtc(face_path):
    """A WebRTC viewer (aiortc, as a browser connects) gets the face's frames and the spoken reply's audio."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription

    mod = example_module()
    kiosk = mod.Kiosk(str(face_path), token=None)
    got = {"video": 0, "audio_s": 0.0, "loud": 0.0}

    async def viewer(url: str):
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")

        async def drain(track):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    got["video"] += 1
                else:
                    pcm = frame.to_ndarray()
                    got["audio_s"] += frame.samples / frame.sample_rate
                    got["loud"] += frame.samples / frame.sample_rate * float(np.abs(pcm).max() > 1000)

        pc.on("track", lambda track: asyncio.ensure_future(drain(track)))
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "api/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
                answer = await r.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        try:
            await asyncio.Event().wait()
        finally:
            await pc.close()

    try:
        asyncio.run(serve_example(mod, kiosk, 8.0, viewer, [(1.0, "Hello, I am the face of this assistant.")]))
        stats = kiosk.face.stats
    finally:
        kiosk.avatar.close()
    assert got["video"] >= 5 * FPS  # frames all along (idle, then speaking)
    assert got["audio_s"] >= 5  # the transport's audio track
    assert got["loud"] >= 1.0  # ... carrying the reply
    assert stats.utterances == 1 and kiosk.face.errors == 0


def test_the_example_refuses_the_network_without_a_token(capsys):
    mod = example_module()
    assert mod.main(["portrait.jpg", "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err


@pytest.mark.slow
def test_the_example_plays_in_chromium(face_path, tmp_path):
    """From the browser's own WebRTC statistics: ≥ 24 fps decoded and audio received over 10 s."""
    import subprocess

    from tests.test_web import chromium

    exe = chromium()
    mod = example_module()
    kiosk = mod.Kiosk(str(face_path), token=None)

    async def viewer(url: str):
        browser = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.Event().wait()
        finally:
            browser.kill()
            browser.wait()

    try:
        asyncio.run(serve_example(mod, kiosk, 16.0, viewer, [(2.0, "Hello, I am the face of this assistant.")]))
    finally:
        kiosk.avatar.close()
    got = [s for s in kiosk.browser if s.get("video", {}).get("framesDecoded")]
    assert len(got) >= 2, "the page never reported decoded video"
    first, last = got[1], got[-1]
    seconds = (last["t"] - first["t"]) / 1000
    assert seconds >= 10
    assert (last["video"]["framesDecoded"] - first["video"]["framesDecoded"]) / seconds >= 24
    assert last["audio"]["totalSamplesReceived"] - first["audio"]["totalSamplesReceived"] >= 0.9 * 48_000 * seconds
