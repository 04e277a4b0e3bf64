"""Video files: frame-by-frame reading with timestamps, and H.264/AAC mp4 writing.

PyAV rather than OpenCV (docs/decisions.md): OpenCV's VideoWriter cannot mux audio and its readers cannot
read audio tracks, while PyAV's wheels bundle FFmpeg with libx264 and AAC, so reading hevc/mpeg1/mp4,
decoding the audio track and muxing speech into the output all go through one library.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from parla.audio.io import SAMPLE_RATE
from parla.errors import VideoFormatError, require
from parla.files import atomic_output, check_input
from parla.limits import MAX_VIDEO_PIXELS

AAC_RATE = 48_000  # Hz: AAC frames of 1024 samples last 21 ms here (64 ms at 16 kHz), so the padded
# end of the audio stays within one video frame of the video's end.
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mpeg", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    duration: float  # seconds, from the container (may be approximate)
    n_frames: int  # estimated from duration and fps when the container does not say
    has_audio: bool


def _open(path: str | os.PathLike):
    av = require("av", "core")
    p = check_input(path)
    try:
        container = av.open(str(p))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VideoFormatError(f"{p}: not a readable video: {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoFormatError(f"{p}: has no video stream")
    cc = container.streams.video[0].codec_context
    if cc.width * cc.height > MAX_VIDEO_PIXELS:
        container.close()
        raise VideoFormatError(f"{p}: frames of {cc.width}x{cc.height} px, over the 8K limit")
    return av, p, container


def probe_video(path: str | os.PathLike) -> VideoInfo:
    _, p, container = _open(path)
    with container:
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate or Fraction(25)
        fps = float(rate)
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        n_frames = s.frames or int(round(duration * fps))
        return VideoInfo(
            p, s.codec_context.width, s.codec_context.height, fps, duration, n_frames, bool(container.streams.audio)
        )


def packet_durations(path: str | os.PathLike) -> tuple[float, float | None]:
    """(video seconds, audio seconds or None) from the packets' timestamps, as a player sees them (fragmented mp4s
    carry no per-stream duration in their header)."""
    _, p, container = _open(path)
    with container:
        ends: dict[int, float] = {}
        streams = [container.streams.video[0], *container.streams.audio[:1]]
        for packet in container.demux(*streams):
            if packet.pts is not None and packet.duration is not None:
                end = float((packet.pts + packet.duration) * packet.time_base)
                ends[packet.stream.index] = max(ends.get(packet.stream.index, 0.0), end)
        video = ends.get(streams[0].index, 0.0)
        audio = ends.get(streams[1].index) if len(streams) > 1 else None
    return video, audio


def remux(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy every stream's packets into a new mp4 (no re-encoding): what a platform's remux does, which drops the
    container's metadata and any embedded manifest."""
    av = require("av", "core")
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for packet in i.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
    return Path(dst)


def iter_frames(path: str | os.PathLike) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp_seconds, rgb_uint8)`` for every decoded frame, in presentation order."""
    av, p, container = _open(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 25)
        index = 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else index / fps
                yield t, frame.to_ndarray(format="rgb24")
                index += 1
        except av.FFmpegError as e:
            raise VideoFormatError(f"{p}: corrupt video data after frame {index}: {e}") from e
        if index == 0:
            raise VideoFormatError(f"{p}: no decodable frames")


class VideoWriter:
    """Write RGB frames as H.264 (yuv420p) and 16 kHz mono speech as AAC into an mp4, atomically.

    Audio may be given whole (``audio=``) or pushed in chunks (``write_audio``); it is encoded only up to the
    video written so far and on close padded or cut to the video's length, so the two durations agree to
    within one AAC frame. Odd frame sizes are padded by one edge pixel (yuv420p needs even sides).
    ``credentials``: the claims of a C2PA manifest (``parla.media.credentials``) signed into the file before it is
    renamed into place. ``fragmented``: an mp4 written as a series of fragments (one per keyframe), for
    recordings of any length: the muxer keeps no growing sample index in memory (a plain mp4's grew 0.4 MB per
    minute of a stream).
    x264's ``grain`` tuning is the default: at CRF 18 ``veryfast`` without it the upper-face detail of the
    grainy eval portraits fell to 0.65 of the photo (p05, p17); with it 0.80–0.85, at about twice the bitrate
    (docs/decisions.md, "Offline video keeps the photo's grain").
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        *,
        audio: np.ndarray | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        tune: str | None = "grain",
        metadata: dict[str, str] | None = None,
        fragmented: bool = False,
        credentials=None,
    ) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf, self.preset, self.tune = crf, preset, tune
        self.fragmented = fragmented
        self.credentials = credentials  # parla.media.credentials.Claims: signed into the file before it appears
        self.metadata = dict(metadata or {})
        self.n_frames = 0
        self._audio_pending: list[np.ndarray] = [] if audio is None else [np.asarray(audio, np.float32)]
        self._has_audio = audio is not None
        self._audio_written = 0  # samples
        self._atomic = atomic_output(self.path)
        self._tmp: Path | None = None
        self._container = None
        self._vstream = self._astream = None

    def __enter__(self) -> VideoWriter:
        self._tmp = self._atomic.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
                if self.credentials is not None:
                    from parla.media.credentials import sign_file

                    sign_file(self._tmp, self.credentials, mime="video/mp4")
            elif self._container is not None:
                self._container.close()
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, tb)

    def write_audio(self, samples: np.ndarray) -> None:
        self._has_audio = True
        self._audio_pending.append(np.asarray(samples, np.float32).reshape(-1))

    def write(self, rgb: np.ndarray) -> None:
        if self._tmp is None:
            raise RuntimeError("VideoWriter must be used as a context manager")
        if self._container is None:
            self._open(rgb.shape[1], rgb.shape[0])
        frame = self._av.VideoFrame.from_ndarray(_even(rgb, self._size), format="rgb24")
        frame.pts = self.n_frames
        self._container.mux(self._vstream.encode(frame))
        self.n_frames += 1
        self._encode_audio(final=False)

    def _open(self, width: int, height: int) -> None:
        av = require("av", "core")
        self._av = av
        self._size = (width + width % 2, height + height % 2)
        # use_metadata_tags keeps custom keys (the provenance tags) in the mp4's udta/meta box
        flags = "use_metadata_tags" + ("+frag_keyframe+empty_moov+default_base_moof" if self.fragmented else "")
        self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": flags})
        for k, v in self.metadata.items():
            self._container.metadata[k] = v
        vs = self._container.add_stream("libx264", rate=self.fps)
        vs.width, vs.height = self._size
        vs.pix_fmt = "yuv420p"
        vs.time_base = 1 / self.fps
        vs.options = {"crf": str(self.crf), "preset": self.preset} | ({"tune": self.tune} if self.tune else {})
        self._vstream = vs
        if self._has_audio:
            aus = self._container.add_stream("aac", rate=AAC_RATE)
            aus.layout = "mono"
            aus.bit_rate = 96_000
            self._astream = aus
            self._upsampler = av.AudioResampler(format="fltp", layout="mono", rate=AAC_RATE)

    def _encode_audio(self, *, final: bool) -> None:
        """Encode pending audio up to the end of the video written so far (all of it, padded, when final)."""
        if self._astream is None:
            return
        target = int(round(self.n_frames / self.fps * SAMPLE_RATE))
        pending = np.concatenate(self._audio_pending) if self._audio_pending else np.zeros(0, np.float32)
        take = target - self._audio_written
        if final and len(pending) < take:
            pending = np.concatenate([pending, np.zeros(take - len(pending), np.float32)])
        if not final and (take < 1024 or len(pending) < 1024):  # encode in blocks, not per sample
            self._audio_pending = [pending]
            return
        chunk = pending[: max(take, 0)]
        self._audio_pending = [] if final else [pending[len(chunk) :]]
        out = []
        if len(chunk):
            frame = self._av.AudioFrame.from_ndarray(np.clip(chunk, -1, 1)[None], format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._audio_written
            self._audio_written += len(chunk)
            out = self._upsampler.resample(frame)
        if final:
            out += self._upsampler.resample(None)
        for f in out:
            f.pts = None  # the encoder numbers its own frames
            self._container.mux(self._astream.encode(f))

    def _finish(self) -> None:
        if self._container is None:
            raise VideoFormatError(f"{self.path}: no frames were written")
        self._encode_audio(final=True)
        self._container.mux(self._vstream.encode(None))
        if self._astream is not None:
            self._container.mux(self._astream.encode(None))
        self._container.close()


def _even(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return np.ascontiguousarray(rgb)
    return np.pad(rgb, ((0, h - rgb.shape[0]), (0, w - rgb.shape[1]), (0, 0)), mode="edge")


def stream_durations(path: str | os.PathLike) -> dict[str, float]:
    """Exact decoded durations of the video and audio streams, in seconds (for checks and tests)."""
    av, p, container = _open(path)
    out: dict[str, float] = {}
    with container:
        vs = container.streams.video[0]
        fps = float(vs.average_rate or 25)
        n = sum(1 for _ in container.decode(vs))
        out["video"] = n / fps
    if probe_video(p).has_audio:
        from parla.audio.io import audio_duration

        out["audio"] = audio_duration(p)
    return out
