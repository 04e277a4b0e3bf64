"""Audio decoding: any file FFmpeg reads (wav, flac, mp3, m4a, ogg, the audio track of mp4/mkv/mpg) ->
16 kHz mono float32 in [-1, 1].

PyAV (bundled FFmpeg) decodes and resamples, so every container and sample rate goes through one path.
``iter_audio`` keeps memory bounded for long files; ``load_audio`` is the convenience for short ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from parla.errors import AudioFormatError, EmptyAudioError, SilentAudioError, require
from parla.files import check_input
from parla.limits import MAX_AUDIO_SECONDS

SAMPLE_RATE = 16_000  # Hz: the one rate every model and feature uses
SILENCE_PEAK = 10 ** (-50 / 20)  # amplitude: a clip whose peak stays under -50 dBFS counts as silent
SUPPORTED = "wav, flac, mp3, m4a/aac, ogg/opus or the audio track of a video file"


class Resampler:
    """Stateful resampler for interleaved or planar chunks at any rate -> ``rate`` (16 kHz) mono float32.

    Used for microphone chunks and raw PCM, where no container tells the rate; keeps filter state between
    chunks so that chunk boundaries leave no clicks.
    """

    def __init__(self, src_rate: int, channels: int = 1, rate: int = SAMPLE_RATE) -> None:
        if src_rate <= 0 or channels <= 0 or rate <= 0:
            raise AudioFormatError(f"invalid audio format: {src_rate} Hz, {channels} channels")
        av = require("av", "core")
        self._av = av
        self.src_rate = int(src_rate)
        self.channels = int(channels)
        self._layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
        self._rs = av.AudioResampler(format="fltp", layout=self._layout, rate=int(rate))
        self._pts = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """``samples``: float32 (n,) or (n, channels) at ``src_rate``. Returns mono float32 at ``rate``."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise AudioFormatError(f"expected {self.channels} channels, got {x.shape[1]}")
        if len(x) == 0:
            return np.zeros(0, np.float32)
        frame = self._av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x.reshape(1, -1)), format="flt", layout=self._layout
        )
        frame.sample_rate = self.src_rate
        frame.pts = self._pts
        self._pts += len(x)
        return _frames_to_array(self._rs.resample(frame))

    def flush(self) -> np.ndarray:
        return _frames_to_array(self._rs.resample(None))


def _frames_to_array(frames) -> np.ndarray:
    """Planar float frames -> mono by the channel mean.

    FFmpeg's own downmix sums channels at -3 dB, which makes identical channels 3 dB louder than either;
    the mean keeps the level of a mono recording stored as stereo.
    """
    if not frames:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().mean(axis=0) for f in frames]).astype(np.float32, copy=False)


def resample(samples: np.ndarray, src_rate: int, channels: int = 1) -> np.ndarray:
    """Resample a whole array (n,) or (n, channels) to 16 kHz mono."""
    rs = Resampler(src_rate, channels)
    return np.concatenate([rs.push(samples), rs.flush()])


def _open_audio(path: os.PathLike | str):
    av = require("av", "core")
    p = check_input(path)
    try:
        container = av.open(str(p))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioFormatError(f"{p}: not a readable audio file (expected {SUPPORTED}): {e}") from e
    if not container.streams.audio:
        container.close()
        raise AudioFormatError(f"{p}: has no audio stream (expected {SUPPORTED})")
    return av, p, container


def iter_audio(path: os.PathLike | str, *, chunk_samples: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 chunks of ``chunk_samples`` (the last may be shorter); bounded memory."""
    av, p, container = _open_audio(path)
    pending: list[np.ndarray] = []
    n_pending = 0
    try:
        stream = container.streams.audio[0]
        try:  # Keep the source layout here; _frames_to_array averages the channels.
            resampler = av.AudioResampler(format="fltp", layout=stream.layout.name or "mono", rate=SAMPLE_RATE)
        except (AttributeError, ValueError) as e:  # 0 or 1000 channels in a header (found by tests/test_fuzz.py)
            raise AudioFormatError(f"{p}: unusable audio stream header ({e})") from None

        def decoded() -> Iterator[np.ndarray]:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield _frames_to_array(resampler.resample(frame))
            yield _frames_to_array(resampler.resample(None))

        try:
            for block in decoded():
                pending.append(block)
                n_pending += len(block)
                while n_pending >= chunk_samples:
                    joined = np.concatenate(pending)
                    yield joined[:chunk_samples]
                    rest = joined[chunk_samples:]
                    pending, n_pending = [rest], len(rest)
        except (av.FFmpegError, ValueError) as e:
            raise AudioFormatError(f"{p}: corrupt audio data: {e}") from e
        if n_pending:
            yield np.concatenate(pending)
    finally:
        container.close()


def load_audio(
    path: os.PathLike | str, *, allow_silent: bool = False, max_seconds: float = MAX_AUDIO_SECONDS
) -> np.ndarray:
    """Decode a whole file to 16 kHz mono float32; raise on empty or (unless allowed) all-silent audio, and
    stop decoding (raise) as soon as the file runs past ``max_seconds``."""
    too_long = AudioFormatError(
        f"{path}: speech longer than the {max_seconds / 60:g}-minute limit; split it, or stream it with "
        "'parla stream PHOTO --audio FILE --sink file:OUT.mp4'"
    )
    if declared_duration(path) > max_seconds:  # the header's word, before decoding (checked again below)
        raise too_long
    chunks: list[np.ndarray] = []
    n = 0
    for chunk in iter_audio(path, chunk_samples=SAMPLE_RATE * 10):
        chunks.append(chunk)
        n += len(chunk)
        if n > max_seconds * SAMPLE_RATE:
            raise too_long
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    check_audio(audio, name=str(path), allow_silent=allow_silent)
    return audio


def declared_duration(path: os.PathLike | str) -> float:
    """Seconds of audio the container's header declares (0 when it does not say)."""
    _, _, container = _open_audio(path)
    with container:
        s = container.streams.audio[0]
        if s.duration is not None and s.time_base is not None:
            return float(s.duration * s.time_base)
        return container.duration / 1e6 if container.duration else 0.0


MAX_PEAK = 16.0  # float audio beyond this is not speech but broken data (a mixing chain may overshoot 1.0 a little)


def check_audio(audio: np.ndarray, *, name: str = "audio", allow_silent: bool = False) -> None:
    if audio.size < SAMPLE_RATE // 10:
        raise EmptyAudioError(f"{name}: audio is empty or shorter than 0.1 s")
    if not np.all(np.isfinite(audio)):
        raise AudioFormatError(f"{name}: audio holds NaN or infinite samples")
    if float(np.max(np.abs(audio))) > MAX_PEAK:
        raise AudioFormatError(f"{name}: audio samples up to {np.max(np.abs(audio)):.3g}, far outside [-1, 1]")
    if not allow_silent and float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise SilentAudioError(f"{name}: audio is silent (peak below -50 dBFS); nothing to lip-sync")


def audio_duration(path: os.PathLike | str) -> float:
    """Duration in seconds by decoding (exact, unlike container headers)."""
    return sum(len(c) for c in iter_audio(path, chunk_samples=SAMPLE_RATE * 10)) / SAMPLE_RATE
