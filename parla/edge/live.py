"""A live conversation on an ``Avatar``: speech pushed as it comes, frames pulled on the video clock.

    session = avatar.live(sample_rate=24_000)          # the rate the frames' audio is played at
    session.push_audio(tts_chunk, 24_000)              # any rate, int16 or float32, as the TTS delivers it
    session.flush()                                    # the reply is complete
    session.interrupt()                                # the user spoke: the reply stops, the face goes idle
    async for frame in session.frames():               # frame.image, frame.audio (what plays with it), frame.pts
        ...

Between replies the face idles (blinks, breathing, small head motion) and the frames carry silence. Every frame
carries exactly the audio that plays during it (``sample_rate`` samples per 1/fps), so an application that plays
each frame's audio as it shows the frame is in sync by construction.

How a reply starts on time. The synthesizer reads each frame's audio with a look-ahead (the lips net's 80 ms and
the streaming phoneme encoder's 200 ms future, plus the frames held to close the lips before a pause: about
0.55 s in all), so an idle face has already been fed that much silence beyond the frame on screen. A reply that
arrives ahead of playback (a TTS is faster than real time) would therefore start that late. Instead the session
keeps a snapshot of the synthesizer before each frame's audio (``MotionSynth.snapshot``): once a reply holds a
look-ahead of audio, the synthesizer goes back to the snapshot of the next frame on screen and reads the reply
from there, so the lips move with the first frame after the audio came (reading that look-ahead again costs about
0.15-0.25 s of compute once, which the clock then catches up). An interruption silences the frames made ahead and
takes the lips to rest from the next frame, on a pause's 4-frame ramp. A reply whose audio comes slower than it
plays (a live source) starts after ``MAX_WAIT_S`` at the look-ahead's end instead, as a microphone does.

Bounded: pending speech is capped at ``max_pending_s`` (more is dropped and counted), the synthesizer runs at most a
look-ahead beyond the frame on screen, and a consumer that falls more than ``max_lag_frames`` behind the clock
skips frames (counted) instead of queuing them.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from parla.audio.io import SAMPLE_RATE
from parla.edge.synth import CLOSE_RAMP, FrameMotion, MotionSynth
from parla.errors import AudioFormatError

# A reply that has not gathered its look-ahead of audio after this long starts without it (a live source); one that
# gets no more audio for this long has ended, flushed or not (TTS services announce their end seconds late).
MAX_WAIT_S = 0.3
MIN_RATE, MAX_RATE = 4_000, 384_000  # Hz accepted by push_audio
MAX_AHEAD = 64  # frames the synthesizer may read beyond the frame on screen (2.5 s at 25 fps: more than any look-ahead)


@dataclass
class LiveFrame:
    index: int  # video frame number since the session started
    pts: float  # seconds: index / fps
    image: np.ndarray  # (H, W, 3) uint8 RGB
    audio: np.ndarray  # float32 mono at sample_rate: the samples that play during this frame (zeros when idle)
    sample_rate: int
    speaking: bool  # the frame's audio holds pushed speech
    motion: FrameMotion | None = None  # what the frame shows: expression, head pose, blink, lips closing


@dataclass
class LiveStats:
    frames: int = 0  # frames delivered
    dropped: int = 0  # frames skipped because the consumer fell more than max_lag_frames behind the clock
    dropped_audio_s: float = 0.0  # speech dropped: over the pending limit, or the audio of skipped frames
    underruns: int = 0  # frames inside a reply whose audio had not arrived when they were made (silence)
    utterances: int = 0  # replies started
    interrupts: int = 0
    # clock seconds from a reply's first audio pushed to its first frame delivered (the last 100 replies)
    first_frame_s: deque = field(default_factory=lambda: deque(maxlen=100))

    def summary(self) -> dict:
        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}
        out["first_frame_ms"] = [round(x * 1e3, 1) for x in self.first_frame_s]
        del out["first_frame_s"]
        return out


class _Fifo:
    """Float32 samples in chunks, taken from the front."""

    def __init__(self) -> None:
        self.chunks: deque[np.ndarray] = deque()
        self.size = 0

    def put(self, x: np.ndarray) -> None:
        if len(x):
            self.chunks.append(x)
            self.size += len(x)

    def take(self, n: int) -> np.ndarray:
        """Up to ``n`` samples (fewer when fewer are held)."""
        out, need = [], min(n, self.size)
        while need:
            head = self.chunks[0]
            if len(head) <= need:
                out.append(self.chunks.popleft())
            else:
                out.append(head[:need])
                self.chunks[0] = head[need:]
            need -= len(out[-1])
            self.size -= len(out[-1])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def clear(self) -> None:
        self.chunks.clear()
        self.size = 0


def as_float_mono(samples, sample_rate: int) -> np.ndarray:
    """int16 (PCM) or float samples, (n,) or (n, channels), as float32 mono; a one-line error for anything else."""
    if isinstance(samples, (bytes, bytearray, memoryview)):
        samples = np.frombuffer(samples, np.int16)
    x = np.asarray(samples)
    if not isinstance(sample_rate, (int, np.integer)) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(f"push_audio: sample rate {sample_rate!r} is not a whole number of Hz in 4000..384000")
    if x.ndim == 2:
        x = x.mean(axis=1) if x.dtype.kind == "f" else x.astype(np.float64).mean(axis=1).astype(x.dtype)
    if x.ndim != 1:
        raise AudioFormatError(f"push_audio: samples of shape {x.shape}; give (n,) or (n, channels)")
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if x.dtype.kind != "f":
        raise AudioFormatError(f"push_audio: samples of type {x.dtype}; give int16 PCM or float32 in -1..1")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise AudioFormatError("push_audio: samples hold NaN or infinity")
    return np.clip(x, -1.0, 1.0)


class LiveSession:
    """Speech in as it comes, frames out on the video clock (module docstring). ``sample_rate``: the rate of every
    frame's audio (pushed audio at another rate is resampled to it, and to 16 kHz for the lips); ``paced``: frames
    come at the video clock (else as fast as they are made, for files and tests, the frame index being the clock)."""

    def __init__(
        self,
        avatar,
        *,
        sample_rate: int = SAMPLE_RATE,
        paced: bool = True,
        max_pending_s: float = 120.0,
        max_lag_frames: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from parla.edge.synth import FILE_LOOKAHEAD_FRAMES

        if not MIN_RATE <= int(sample_rate) <= MAX_RATE:
            raise AudioFormatError(f"live session: sample rate {sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
        self.avatar, self.sample_rate, self.paced = avatar, int(sample_rate), paced
        self.fps = float(avatar.config.video.fps)
        self.max_pending = int(max_pending_s * SAMPLE_RATE)
        self.max_lag_frames, self.clock = max(1, int(max_lag_frames)), clock
        self.stats = LiveStats()
        # pushed side (any thread): the reply's samples at 16 kHz (lips) and at the output rate (played)
        self._lock = threading.Lock()
        self._p16, self._pout = _Fifo(), _Fifo()
        self._resamplers: tuple | None = None  # (rate in, to 16 kHz, to the output rate) of the reply being pushed
        self._ended = True  # no more audio of the current reply is expected (flushed, or none pushed)
        self._last_push = 0.0  # clock time of the last audio pushed: a reply quiet for MAX_WAIT_S has ended
        self._first_push: float | None = None  # clock time of the first audio of a reply not started yet
        self._reply_pushed: float | None = None  # ... of the reply being started, until its first frame is out
        self._generation = 0  # interruptions so far
        self._cut_pending = False  # an interruption waits for the frame thread to silence the frames made ahead
        # frame side (one thread at a time: the executor's, or the caller's with paced=False)
        self.motion = avatar.new_motion(lookahead_frames=FILE_LOOKAHEAD_FRAMES)
        self.motion.rest_from(0.0)  # idle until the first reply
        self.renderer = avatar.new_renderer(realtime=paced)
        self._speech = False  # the synthesizer is reading a reply
        self._fed = 0  # frames whose audio the synthesizer has read
        self._next = 0  # next frame to deliver
        self._snaps: dict[int, MotionSynth] = {}  # frame -> synthesizer before that frame's audio
        self._ready: dict = {}  # frame -> FrameMotion, made ahead of delivery
        self._audio: dict[int, tuple[np.ndarray, bool]] = {}  # frame -> (its output audio, speaking)
        self._pool: ThreadPoolExecutor | None = None
        self.closed = False

    # the pushed side ------------------------------------------------------------------------------------------
    def push_audio(self, samples, sample_rate: int) -> None:
        """Speech of the current reply (a new reply after ``flush`` or ``interrupt``): int16 PCM (array or bytes)
        or float32 in -1..1, mono or (n, channels), at any rate from 4 to 384 kHz. Never blocks on frames."""
        from parla.audio.io import Resampler

        x = as_float_mono(samples, sample_rate)
        if not len(x):
            return
        with self._lock:
            rs = self._resamplers
            if rs is None or rs[0] != sample_rate:
                self._flush_resamplers()  # the rate changed within a reply: the old rate's filters first
                to16 = None if sample_rate == SAMPLE_RATE else Resampler(sample_rate, rate=SAMPLE_RATE)
                out = None if sample_rate == self.sample_rate else Resampler(sample_rate, rate=self.sample_rate)
                rs = self._resamplers = (sample_rate, to16, out)
            if self._ended and not self._speech and self._first_push is None:
                self._first_push = self.clock()
            self._ended = False
            self._last_push = self.clock()
            self._put(rs[1].push(x) if rs[1] else x, rs[2].push(x) if rs[2] else x)

    def _flush_resamplers(self) -> None:
        """What the reply's resamplers hold back, into the pending reply (under the lock)."""
        rs, self._resamplers = self._resamplers, None
        if rs is not None:
            empty = np.zeros(0, np.float32)
            self._put(rs[1].flush() if rs[1] else empty, rs[2].flush() if rs[2] else empty)

    def _put(self, x16: np.ndarray, xout: np.ndarray) -> None:
        """Into the pending reply, as far as the limit allows (the rest is dropped and counted)."""
        room = max(0, self.max_pending - self._p16.size)
        if room < len(x16):
            self.stats.dropped_audio_s += (len(x16) - room) / SAMPLE_RATE
            keep = room / max(len(x16), 1)
            x16, xout = x16[:room], xout[: int(len(xout) * keep)]
        self._p16.put(np.asarray(x16, np.float32))
        self._pout.put(np.asarray(xout, np.float32))

    def flush(self) -> None:
        """The current reply is complete: its last frames come out, then the face idles."""
        with self._lock:
            self._flush_resamplers()
            self._ended = True

    def interrupt(self) -> None:
        """Drop the reply (what is pending and what the synthesizer read ahead): from the next frame made on, the
        face says nothing more of it and goes back to idle. A frame already being made when this is called comes
        out with its audio silenced."""
        with self._lock:
            self._p16.clear()
            self._pout.clear()
            self._resamplers, self._ended, self._first_push = None, True, None
            self._generation += 1
            self._cut_pending = True
            self.stats.interrupts += 1

    @property
    def idle(self) -> bool:
        """No reply is being shown or waiting to be."""
        return not self._speech and not self._p16.size

    @property
    def pending_s(self) -> float:
        """Seconds of pushed speech not yet read by the synthesizer."""
        return self._p16.size / SAMPLE_RATE

    # the frame side -------------------------------------------------------------------------------------------
    def _span(self, k: int, rate: int) -> int:
        return round((k + 1) * rate / self.fps) - round(k * rate / self.fps)

    def _rewind(self, k: int) -> bool:
        """Back to the synthesizer before frame ``k``'s audio: every frame from ``k`` on is made anew. False where
        no snapshot of that frame is kept (just after an interruption): nothing changes."""
        snap = self._snaps.get(k)
        if snap is None:
            return False
        self.motion = snap.snapshot()  # the kept snapshot stays usable for another rewind to the same frame
        self._fed = k
        self._snaps = {j: s for j, s in self._snaps.items() if j <= k}
        self._ready = {j: fm for j, fm in self._ready.items() if j < k}
        self._audio = {j: a for j, a in self._audio.items() if j < k}
        return True

    def _cut(self, k: int) -> None:
        """An interruption before frame ``k``: the frames made ahead from the reply's audio keep their head motion
        but go silent and take the lips to rest on a pause's ramp, and so does the synthesizer from where it is (no
        rewind: reading a look-ahead of audio again would hold the picture for a quarter of a second). Snapshots
        from ``k`` on hold the dropped reply: a new reply cannot go back into them."""
        self._speech = False
        step = 1.0 / (CLOSE_RAMP + 1)
        for j, fm in self._ready.items():
            if j >= k:
                fm.mouth_rest = max(fm.mouth_rest, min(1.0, (j - k + 1) * step))
                fm.voiced, fm.mouth_close = False, 0.0
        self._audio = {j: (np.zeros_like(a), False) if j >= k else (a, sp) for j, (a, sp) in self._audio.items()}
        made = max([j for j in self._ready if j >= k], default=k - 1)  # the last frame the synthesizer gave
        self.motion.close = max(self.motion.close or 0.0, min(1.0, (made - k + 1) * step))
        self.motion.rest_from(k / self.fps)
        self._snaps = {j: snap for j, snap in self._snaps.items() if j < k}

    def _start_reply(self, k: int) -> None:
        """Start the pending reply with frame ``k`` when it holds a look-ahead of audio (or is complete); after
        MAX_WAIT_S without, at the look-ahead's end."""
        with self._lock:
            if self._speech or not self._p16.size:
                return
            ahead = self._p16.size >= self.motion.latency_samples + 2 * self._span(k, SAMPLE_RATE)
            waited = self._first_push is not None and self.clock() - self._first_push >= MAX_WAIT_S
            if not (ahead or self._ended or waited):
                return
            self._reply_pushed, self._first_push = self._first_push, None
        rewound = (ahead or self._ended) and self._rewind(k)
        self.motion.speak_from(self._fed / self.fps)
        self._speech = True
        self.stats.utterances += 1
        if rewound:  # the look-ahead again, in one push
            self._feed(math.ceil(self.motion.latency_samples / self._span(k, SAMPLE_RATE)) + 1)

    def _take(self, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Frame ``k``'s audio at 16 kHz and at the output rate: the reply's, or silence; and whether it speaks."""
        n16, nout = self._span(k, SAMPLE_RATE), self._span(k, self.sample_rate)
        a16, aout, speaking = np.zeros(n16, np.float32), np.zeros(nout, np.float32), False
        if self._speech:
            with self._lock:
                # the reply's end: flushed, or no audio for MAX_WAIT_S (a TTS that announces its end late)
                ended = self._ended or self.clock() - self._last_push >= MAX_WAIT_S
                last = ended and self._pout.size <= nout
                if last or (self._p16.size >= n16 and self._pout.size >= nout):
                    x16, xout = self._p16.take(n16), self._pout.take(nout)
                    a16[: len(x16)], aout[: len(xout)] = x16, xout
                    speaking = len(xout) > 0
                    if last:
                        self._p16.clear()  # a resampler's rounding may leave a sample or two
                        self._speech = False
                        self.motion.rest_from((k + 1) / self.fps)
                else:
                    self.stats.underruns += 1
        return a16, aout, speaking

    def _feed(self, n: int = 1) -> None:
        """Read ``n`` more frames of audio. Several at once (a reply's start, where the synthesizer reads its
        look-ahead again) go to the synthesizer in one push, whose streaming phoneme encoder then reads them in one
        window instead of one per two phoneme frames (``StreamingPhonemes.coarse``): 0.05 s instead of 0.15."""
        from parla.audio.phonemes import StreamingPhonemes

        k0 = self._fed
        self._snaps[k0] = self.motion.snapshot()
        parts = []
        for k in range(k0, k0 + n):
            a16, aout, speaking = self._take(k)
            self._audio[k] = (aout, speaking)
            parts.append(a16)
        ph = self.motion.phonemes
        coarse = n > 1 and isinstance(ph, StreamingPhonemes)
        if coarse:
            ph.coarse = True
        try:
            made = self.motion.push(np.concatenate(parts))
        finally:
            if coarse:
                ph.coarse = False
        for fm in made:
            if fm.index >= self._next:
                self._ready[fm.index] = fm
        self._fed += n

    def _motion(self, k: int):
        """Frame ``k``'s motion and audio (the synthesizer read as far as it needs)."""
        with self._lock:
            cut, self._cut_pending = self._cut_pending, False
        if cut:
            self._cut(k)
        self._start_reply(k)
        for _ in range(MAX_AHEAD):
            if k in self._ready:
                break
            self._feed()
        else:
            raise RuntimeError(f"live session: frame {k} never came out of the synthesizer (was it fed elsewhere?)")
        # a rewind goes back to the frame on screen at the earliest: the snapshots before it are done with (each is
        # about 0.3 MB, and the synthesizer reads about 15 frames ahead)
        self._snaps = {j: snap for j, snap in self._snaps.items() if j >= k}
        audio, speaking = self._audio.pop(k)
        return self._ready.pop(k), audio, speaking

    def _skip(self, n: int) -> None:
        """The consumer is behind: frames whose motion is made (the synthesizer must read their audio) but not
        rendered, their speech dropped."""
        for _ in range(n):
            _, audio, speaking = self._motion(self._next)
            if speaking:
                self.stats.dropped_audio_s += len(audio) / self.sample_rate
            self._next += 1
            self.stats.dropped += 1

    def next_frame(self) -> LiveFrame:
        """The next frame, made now (no pacing): the synchronous form of ``frames``."""
        k = self._next
        gen = self._generation
        fm, audio, speaking = self._motion(k)
        image = self.renderer.render(fm)
        self._next += 1
        if gen != self._generation:  # interrupted while it was made: none of the reply's audio goes out
            audio, speaking = np.zeros_like(audio), False
        self.stats.frames += 1
        return LiveFrame(k, k / self.fps, image, audio, self.sample_rate, speaking, fm)

    async def frames(self) -> AsyncIterator[LiveFrame]:
        """Frames from now on, one per 1/fps of the clock (``paced``), each made in a worker thread so that the
        event loop (and ``push_audio``) stays free. Ends when the session is closed."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="parla-live")
        t0: float | None = None  # the clock's time of frame 0: set when the first frame is ready (a warm-up)
        while not self.closed:
            if self.paced and t0 is not None:
                late = self.clock() - (t0 + self._next / self.fps)
                if late > self.max_lag_frames / self.fps:
                    await loop.run_in_executor(self._pool, self._skip, int(late * self.fps))
            gen = self._generation
            frame = await loop.run_in_executor(self._pool, self.next_frame)
            if t0 is None:
                t0 = self.clock() - frame.index / self.fps
            if self.paced:
                wait = t0 + frame.index / self.fps - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            if self.closed:
                return
            if gen != self._generation:  # interrupted while it was made or waited for its time: silent
                frame.audio, frame.speaking = np.zeros_like(frame.audio), False
            if frame.speaking and self._reply_pushed is not None:
                self.stats.first_frame_s.append(self.clock() - self._reply_pushed)
                self._reply_pushed = None
            yield frame

    def close(self, wait: bool = True) -> None:
        """Stop the frames; ``wait``: until a frame being made in the worker thread is done."""
        self.closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
