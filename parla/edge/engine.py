"""The streaming engine: audio source -> streaming motion -> bounded frame queue -> renderer -> sink.

Two threads. The audio thread reads the source (which keeps real time: a microphone, or a file played at its
own pace), computes features and motion, and queues one job per video frame as soon as that frame's audio (and
its 80 ms look-ahead) has arrived. The render thread (the caller's, so Ctrl-C lands there) renders each job and
hands the frame to the sink. The queue is bounded: when rendering falls behind, the oldest job is dropped and
counted (a file sink repeats the previous frame so that video and audio stay aligned), so latency and memory
stay bounded instead of growing. Every frame carries its timestamp (index / fps) and the wall time at which
the audio it waited for arrived, which is what the audio-to-frame latency is measured from.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from parla.audio.io import SAMPLE_RATE
from parla.edge.render import StageTimer

_END = object()


@dataclass
class StreamStats:
    frames: int = 0  # frames delivered to the sink (rendered)
    dropped: int = 0  # frames whose job was dropped because rendering fell behind
    audio_s: float = 0.0  # seconds of audio consumed
    wall_s: float = 0.0
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=20_000))  # audio-to-frame, last 20k frames
    rss_mb: deque = field(default_factory=deque)  # (seconds, RSS MB), sampled every rss_every_s (bounded, below)
    stages: dict = field(default_factory=dict)
    interrupted: bool = False
    text_to_frame_ms: deque = field(default_factory=lambda: deque(maxlen=1000))  # text arrived -> its first frame

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict:
        lat = np.asarray(self.latency_ms, float)
        q = {f"p{p}": round(float(np.percentile(lat, p)), 2) for p in (50, 95, 99)} if len(lat) else {}
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "audio_s": round(self.audio_s, 2),
            "wall_s": round(self.wall_s, 2),
            "fps": round(self.fps, 2),
            "audio_to_frame_ms": q,
            "text_to_first_frame_ms": [round(x, 1) for x in self.text_to_frame_ms],
            "stages": self.stages,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "interrupted": self.interrupted,
        }


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def _glibc():
    """The C library on Linux (mallopt, malloc_trim), else None."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def lean_malloc(arenas: int = 2, mmap_kb: int = 256) -> bool:
    """glibc's allocator set for a long-running stream (Linux; elsewhere nothing happens, False): at most ``arenas``
    malloc arenas (every thread that allocates would otherwise get its own, up to 8 per core), and every block of
    ``mmap_kb`` or more (a frame, a feature window) mapped and unmapped on its own, instead of the default
    threshold that grows after the first such block is freed and then keeps frames on a fragmented heap.
    Measured on the Pipecat example: docs/benchmarks.md."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        m_mmap_threshold, m_arena_max = -3, -8
        return bool(libc.mallopt(m_arena_max, arenas)) and bool(libc.mallopt(m_mmap_threshold, mmap_kb * 1024))
    except (OSError, AttributeError):
        return False


def trim_heap() -> None:
    """Give the heap's free memory back to the system (glibc ``malloc_trim``; elsewhere nothing happens): after a
    one-off step that allocated much and freed it (the face models that prepare a portrait: 13 MB resident)."""
    libc = _glibc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)


def peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM belongs to the address space, so it starts afresh at exec;
    ru_maxrss (the fallback off Linux) carries over from a parent that forked this process."""
    import resource
    import sys

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024


class StreamEngine:
    def __init__(
        self,
        source,
        motion,
        renderer,
        sink,
        *,
        fps: float,
        queue_frames: int = 8,
        max_seconds: float | None = None,
        rss_every_s: float = 5.0,
        keep_rss: int = 2000,
    ) -> None:
        self.source, self.motion, self.renderer, self.sink = source, motion, renderer, sink
        self.fps, self.max_seconds, self.rss_every_s = fps, max_seconds, rss_every_s
        self.jobs: queue.Queue = queue.Queue(maxsize=queue_frames)
        self.stats = StreamStats(rss_mb=deque(maxlen=keep_rss))
        self.timer: StageTimer = renderer.timer
        self.arrivals: deque = deque(maxlen=4096)  # (end sample, arrival wall time) of recent chunks
        self.error: BaseException | None = None
        self._samples = 0
        self.utterances: deque = deque(maxlen=64)  # (first frame index, text arrival) of utterances not yet shown

    # audio thread -------------------------------------------------------------------------------------------
    def _audio(self) -> None:
        try:
            for chunk in self.source:
                if chunk.closures:  # known phoneme timing (a TTS reply): where the lips must touch
                    self.motion.add_closures(chunk.closures)
                if chunk.utterance is not None:  # a reply known whole as it starts: its phoneme features at once
                    self.motion.add_utterance(self._samples, chunk.utterance)
                if chunk.text_arrival is not None:  # an utterance starts with this chunk: time its first frame
                    self.utterances.append((math.ceil(self._samples / SAMPLE_RATE * self.fps), chunk.text_arrival))
                self.sink.audio(chunk.samples)
                self._samples += len(chunk.samples)
                self.arrivals.append((self._samples, chunk.arrival))
                for fm in self.motion.push(chunk.samples):
                    self._queue((fm, self._arrival_of(fm.index)))
                if self.max_seconds and self._samples >= self.max_seconds * SAMPLE_RATE:
                    break
            if not self.source.stopped:  # end of input: the last frames, all of them (no newer audio will come,
                for fm in self.motion.flush(self._samples):  # and the look-ahead's frames come out in one burst)
                    self._queue((fm, self._arrival_of(fm.index)), wait=True)
        except BaseException as e:  # surfaced in the render thread
            self.error = e
        finally:
            self.stats.audio_s = self._samples / SAMPLE_RATE
            self._queue(_END, wait=True)

    def _arrival_of(self, index: int) -> float:
        """Wall time at which the audio at this frame's instant arrived (the chunk that held it). Scanned from
        the newest chunk: a frame is emitted ~100 ms after its audio, a few chunks back."""
        need = (index / self.fps) * SAMPLE_RATE
        t = self.arrivals[-1][1]
        for end, arrival in reversed(self.arrivals):
            if end < need:
                break
            t = arrival
        return t

    def _queue(self, job, wait: bool = False) -> None:
        if wait:  # until the render thread takes it, or the stream is stopped
            while not self.source.stopped:
                try:
                    self.jobs.put(job, timeout=0.1)
                    return
                except queue.Full:
                    pass
        while True:
            try:
                self.jobs.put_nowait(job)
                return
            except queue.Full:
                try:
                    old = self.jobs.get_nowait()  # rendering is behind: drop the oldest frame, keep latency bounded
                    if old is not _END:
                        self.stats.dropped += 1
                except queue.Empty:
                    pass

    # render thread -----------------------------------------------------------------------------------------
    def run(self) -> StreamStats:
        t0 = time.monotonic()
        next_rss = t0
        audio = threading.Thread(target=self._audio, daemon=True, name="parla-audio")
        ok, last, written = False, None, 0
        self.motion.timer = self.timer
        audio.start()
        try:
            while True:
                job = self.jobs.get()
                if job is _END:
                    break
                fm, arrival = job
                frame = self.renderer.render(fm)
                while getattr(self.sink, "every_frame", False) and written < fm.index:
                    # a file needs every slot: a dropped frame holds the previous picture (before the first
                    # rendered frame: that frame), keeping the video as long as its audio and in sync
                    self.sink.write(frame if last is None else last, written)
                    written += 1
                self.sink.write(frame, fm.index)
                written, last = fm.index + 1, frame
                now = time.monotonic()
                self.stats.latency_ms.append((now - arrival) * 1e3)
                while self.utterances and self.utterances[0][0] <= fm.index:
                    self.stats.text_to_frame_ms.append((now - self.utterances.popleft()[1]) * 1e3)
                self.stats.frames += 1
                if now >= next_rss:
                    self.stats.rss_mb.append((round(now - t0, 1), round(rss_mb(), 1)))
                    next_rss = now + self.rss_every_s
            if self.error is not None:
                raise self.error
            ok = True
        except KeyboardInterrupt:
            self.stats.interrupted = True
            raise
        finally:
            self.source.stop()
            self.stats.wall_s = time.monotonic() - t0
            self.stats.stages = self.timer.summary()
            try:
                # a recording stopped by a signal is finished and kept (what it has so far is worth keeping)
                self.sink.close(ok=ok or (self.stats.interrupted and getattr(self.sink, "keeps_partial", False)))
            finally:
                audio.join(timeout=2.0)
                self.source.close()
        return self.stats
