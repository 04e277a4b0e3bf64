"""Audio sources of the streaming engine. Each yields ``AudioChunk``s of 16 kHz mono float32 with the wall time
at which the chunk's last sample plays (a live source: when it was captured), which is what audio-to-frame latency
is measured from. A source whose audio exists ahead of playback (a file, a TTS reply) delivers it ``lead_s``
early, and the motion synthesizer uses that much look-ahead (``parla.edge.synth``); a microphone has none.

- ``FileSource``: any audio file played at real-time pace (or ``speed`` times faster, for tests and benches);
- ``MicSource``: a microphone through PyAudio (device index, rate, chunk size from the firmware config);
- ``StdinSource``: raw 16-bit little-endian PCM on stdin (e.g. ``arecord -f S16_LE | parla stream ...``); when
  no bytes come for a while it yields silence, so the face idles instead of freezing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from parla.audio.io import SAMPLE_RATE, Resampler
from parla.errors import AudioFormatError, ParlaError


@dataclass
class AudioChunk:
    samples: np.ndarray  # 16 kHz mono float32
    arrival: float  # time.monotonic() when the last sample of the chunk was available
    closures: list[tuple[float, float]] | None = None  # stream seconds where the lips must touch (known timing)
    text_arrival: float | None = None  # time.monotonic() when the text of an utterance starting here arrived
    utterance: np.ndarray | None = None  # the whole audio of an utterance that starts with this chunk (TTS)


class Source:
    """Iterate to get chunks; ``stop()`` (any thread) ends the iteration at the next chunk."""

    lead_s = 0.0  # seconds ahead of playback at which the source delivers its audio (live sources: 0)
    known_audio: np.ndarray | None = None  # the whole audio, where it is in memory ahead of playback
    segments = False  # True: known utterances (AudioChunk.utterance) and digital silence between them

    def __init__(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[AudioChunk]:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()

    def _pace(self, start: float, end: int, speed: float) -> float:
        """Wait until the audio up to sample ``end`` is due (``lead_s`` before it plays at ``speed`` x real time,
        counted from ``start``); returns when it plays."""
        plays = start + end / SAMPLE_RATE / speed
        due = plays - self.lead_s / speed
        while (delay := due - time.monotonic()) > 0 and not self._stop.is_set():
            time.sleep(min(delay, 0.02))
        return plays


class ArraySource(Source):
    """16 kHz samples already in memory, played at ``speed`` x real time (0: as fast as the consumer takes) and
    delivered ``lead_s`` (of audio time) before they play."""

    def __init__(self, audio: np.ndarray, chunk_ms: int = 40, speed: float = 1.0, lead_s: float = 0.0) -> None:
        super().__init__()
        self.audio, self.chunk, self.speed = np.asarray(audio, np.float32), SAMPLE_RATE * chunk_ms // 1000, speed
        self.lead_s = max(0.0, lead_s)
        self.known_audio = self.audio

    def _blocks(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.audio), self.chunk):
            yield self.audio[i : i + self.chunk]

    def __iter__(self) -> Iterator[AudioChunk]:
        start, end = time.monotonic(), 0
        for block in self._blocks():
            if self._stop.is_set():
                return
            end += len(block)
            yield AudioChunk(block, self._pace(start, end, self.speed) if self.speed > 0 else time.monotonic())


class FileSource(ArraySource):
    """An audio file, decoded as it plays (bounded memory for a file of any length). The first 10 s are decoded
    up front, so that an unreadable, empty or silent-at-start file is refused before the stream starts."""

    def __init__(self, path, chunk_ms: int = 40, speed: float = 1.0, lead_s: float = 0.0) -> None:
        from parla.audio.io import check_audio, iter_audio

        head = next(iter(iter_audio(path, chunk_samples=SAMPLE_RATE * 10)), np.zeros(0, np.float32))
        check_audio(head, name=str(path))
        super().__init__(head, chunk_ms, speed, lead_s)
        self.path = path
        if len(head) == SAMPLE_RATE * 10:  # longer than the head: decoded as it plays, never whole
            self.known_audio = None

    def _blocks(self) -> Iterator[np.ndarray]:
        from parla.audio.io import iter_audio

        yield from iter_audio(self.path, chunk_samples=self.chunk)


def text_lines(stream, max_chars: int | None = None) -> Iterator[str]:
    """Lines of a binary text stream (stdin as an assistant pipes its replies), read in bounded memory: a line longer
    than the TTS takes (``max_chars``) is skipped to its end with a warning instead of being gathered whole (an
    endless line without a newline would otherwise grow without bound), and a line that is not UTF-8 is skipped with
    a warning instead of ending the stream."""
    from parla.audio.tts import MAX_CHARS

    max_chars = max_chars or MAX_CHARS
    limit = 4 * max_chars + 2  # UTF-8: at most 4 bytes a character, and the newline
    log = logging.getLogger("parla")
    while True:
        raw = stream.readline(limit)
        if not raw:
            return
        if len(raw) >= limit and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # the rest of the line, a bounded piece at a time
                raw = stream.readline(limit)
            log.warning("skipped a line of text longer than %d characters", max_chars)
            continue
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("skipped a line of text that is not UTF-8")


class TextSource(Source):
    """Text spoken by the offline TTS (``parla[tts]``): the utterances of ``lines`` (a list, or a text stream such
    as stdin read line by line as it comes: one utterance per line, for an assistant that pipes its replies).

    Speech exists ahead of playback, so it is delivered ``lead_s`` early (the synthesizer's file look-ahead) with
    the TTS's own /p b m/ timing (the lips touch there); between utterances the source yields silence, so the face
    idles instead of freezing. It ends when the lines end and the last utterance has played."""

    segments = True

    def __init__(
        self,
        lines,
        voice: str = "en-us",
        chunk_ms: int = 40,
        lead_s: float = 0.0,
        speed: float = 1.0,
        max_queued: int = 16,
    ) -> None:
        super().__init__()
        from parla.audio.tts import speak

        speak("a", voice=voice)  # load the engine and check the voice before the stream starts
        self.voice, self.chunk, self.speed, self.lead_s = voice, SAMPLE_RATE * chunk_ms // 1000, speed, max(0, lead_s)
        self.queue: queue.Queue = queue.Queue(maxsize=max_queued)  # bounded: a flood of text waits in the pipe
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, args=(lines,), daemon=True, name="parla-tts")
        self.thread.start()

    def _read(self, lines) -> None:
        from parla.audio.tts import speak

        try:
            for line in lines:
                if self._stop.is_set():
                    return
                text = line.strip()
                if text:
                    arrived = time.monotonic()
                    try:
                        self._put((speak(text, voice=self.voice), arrived))
                    except ParlaError as e:  # one bad line (too long, nothing speakable) does not end the stream
                        logging.getLogger("parla").warning("skipped a line of text: %s", e)
        except BaseException as e:  # surfaced by the stream
            self.error = e
        finally:
            self._put(None)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[AudioChunk]:
        start, pos, pending, ended = time.monotonic(), 0, np.zeros(0, np.float32), False
        while not self._stop.is_set():
            closures, text_arrival, utterance = None, None, None
            if not len(pending):
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = False
                if item is None:
                    ended = True
                elif item:
                    speech, text_arrival = item
                    t0 = pos / SAMPLE_RATE
                    closures = [(t0 + p.start_s, t0 + p.end_s) for p in speech.phonemes if p.bilabial]
                    pending = utterance = speech.audio
            if self.error is not None:
                raise ParlaError(f"tts: {self.error}") from self.error
            if ended and not len(pending):
                return
            block = pending[: self.chunk]
            pending = pending[len(block) :]
            if len(block) < self.chunk:  # silence between utterances: the face idles
                block = np.concatenate([block, np.zeros(self.chunk - len(block), np.float32)])
            pos += len(block)
            plays = self._pace(start, pos, self.speed) if self.speed > 0 else time.monotonic()
            yield AudioChunk(block, plays, closures, text_arrival, utterance)


def _pcm16(raw: bytes, channels: int) -> np.ndarray:
    x = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, channels)


class MicSource(Source):
    """A PyAudio input stream (16-bit). ``pyaudio_module`` lets tests pass a fake with PyAudio's API."""

    def __init__(
        self,
        sample_rate: int = 16_000,
        chunk_ms: int = 40,
        device_index: int | None = None,
        channels: int = 1,
        pyaudio_module=None,
    ) -> None:
        super().__init__()
        if pyaudio_module is None:
            try:
                import pyaudio as pyaudio_module  # type: ignore[no-redef]
            except ImportError as e:
                raise ParlaError(
                    "microphone input needs PyAudio: pip install 'parla[audio]' (and the PortAudio "
                    "library: apt install portaudio19-dev / libportaudio2)"
                ) from e
        self.pa_mod, self.rate, self.channels = pyaudio_module, sample_rate, channels
        self.frames = max(1, sample_rate * chunk_ms // 1000)
        self.pa = pyaudio_module.PyAudio()
        try:
            if device_index is not None:
                info = self.pa.get_device_info_by_index(device_index)
                if int(info.get("maxInputChannels", 0)) < channels:
                    raise ParlaError(
                        f"audio.device_index {device_index} ({info.get('name')}): not an input with "
                        f"{channels} channel(s)"
                    )
            self.stream = self.pa.open(
                format=pyaudio_module.paInt16,
                channels=channels,
                rate=sample_rate,
                input=True,
                input_device_index=device_index,
                frames_per_buffer=self.frames,
            )
        except ParlaError:
            self.pa.terminate()
            raise
        except Exception as e:  # PyAudio raises OSError for a missing device or an unsupported rate
            self.pa.terminate()
            raise ParlaError(
                f"cannot open the microphone (device {device_index}, {sample_rate} Hz, {channels} ch):"
                f" {e}; list devices with 'python -m parla.edge.sources'"
            ) from e
        self.resampler = Resampler(sample_rate, channels)

    def __iter__(self) -> Iterator[AudioChunk]:
        while not self._stop.is_set():
            raw = self.stream.read(self.frames, exception_on_overflow=False)
            yield AudioChunk(self.resampler.push(_pcm16(raw, self.channels)), time.monotonic())

    def close(self) -> None:
        super().close()
        try:
            self.stream.stop_stream()
            self.stream.close()
        finally:
            self.pa.terminate()


class StdinSource(Source):
    """Raw s16le PCM from a binary stream (stdin by default); silence while nothing arrives (idle animation)."""

    def __init__(
        self, sample_rate: int = 16_000, chunk_ms: int = 40, channels: int = 1, stream=None, idle_after_s: float = 0.2
    ) -> None:
        super().__init__()
        if stream is None:
            import sys

            stream = sys.stdin.buffer
        self.stream, self.rate, self.channels, self.idle_after = stream, sample_rate, channels, idle_after_s
        self.bytes = max(1, sample_rate * chunk_ms // 1000) * 2 * channels
        self.chunk_s = chunk_ms / 1000
        self.resampler = Resampler(sample_rate, channels)
        self.q: queue.Queue = queue.Queue(maxsize=64)  # ~2.5 s of 40 ms chunks: bounded
        threading.Thread(target=self._read, daemon=True, name="parla-stdin").start()

    def _read(self) -> None:
        while not self._stop.is_set():
            raw = self.stream.read(self.bytes)
            if not raw:
                self.q.put(None)
                return
            self.q.put(raw)

    def __iter__(self) -> Iterator[AudioChunk]:
        silence = np.zeros((int(self.rate * self.chunk_s), self.channels), np.float32)
        while not self._stop.is_set():
            try:
                raw = self.q.get(timeout=self.idle_after)
            except queue.Empty:  # nobody speaks: keep the clock going with silence
                yield AudioChunk(self.resampler.push(silence), time.monotonic())
                continue
            if raw is None:
                return
            if len(raw) % (2 * self.channels):
                raise AudioFormatError("stdin: the PCM stream ended mid-sample (expected s16le)")
            yield AudioChunk(self.resampler.push(_pcm16(raw, self.channels)), time.monotonic())


def list_input_devices(pyaudio_module=None) -> list[tuple[int, str, int]]:
    """(index, name, input channels) of the audio inputs PyAudio sees."""
    if pyaudio_module is None:
        import pyaudio as pyaudio_module  # type: ignore[no-redef]
    pa = pyaudio_module.PyAudio()
    try:
        return [
            (i, str(d.get("name")), int(d.get("maxInputChannels", 0)))
            for i in range(pa.get_device_count())
            if int((d := pa.get_device_info_by_index(i)).get("maxInputChannels", 0)) > 0
        ]
    finally:
        pa.terminate()


if __name__ == "__main__":
    for index, name, ch in list_input_devices():
        print(f"{index}: {name} ({ch} ch)")
