"""Frame sinks of the streaming engine: ``write(frame, index)`` per frame, ``audio(samples)`` as audio streams in
(sinks that mux it keep it, others ignore it), ``close(ok)`` at the end (``ok=False`` on Ctrl-C or an error:
nothing half-written is left behind).

- ``FileSink``: an mp4 with the audio muxed (atomic: written under a temporary name, renamed on success);
- ``WindowSink``: an OpenCV window (q or Esc stops the stream);
- ``RawSink``: raw RGB24 frames to a binary stream (stdout) or to a callback;
- ``WebRTCSink`` (``parla.edge.web``): the kiosk page, picture and sound over WebRTC, on 127.0.0.1 by default.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from parla.errors import ParlaError, require


class StopStream(Exception):
    """Raised by a sink when the viewer asks to stop (window closed, q pressed)."""


class Sink:
    def audio(self, samples: np.ndarray) -> None:
        """16 kHz mono samples in arrival order (called from the audio thread)."""

    def write(self, frame: np.ndarray, index: int) -> None:
        raise NotImplementedError

    def close(self, ok: bool = True) -> None:
        """Finish (ok) or abandon (not ok) the output."""


class FileSink(Sink):
    """H.264 + AAC mp4, encoded in its own thread (the encoder then runs beside the renderer instead of after it:
    a 1186x1080 portrait took >40 ms per frame in one thread on 2 cores) with x264's fastest preset, as a live
    recorder needs (it keeps the photo's grain without x264's grain tuning: detail 0.93–0.96 on p05); a bounded
    queue of frames between them. The mp4 is fragmented, so that a recording of any length keeps flat memory."""

    every_frame = True  # the file's timeline needs a picture in every slot
    keeps_partial = True  # a recording stopped by a signal is finished, not thrown away

    def __init__(
        self,
        path,
        fps: float,
        metadata: dict | None = None,
        preset: str = "ultrafast",
        queue_frames: int = 8,
        credentials=None,
    ) -> None:
        import queue

        from parla.files import check_output
        from parla.media.video import VideoWriter

        check_output(path)
        self.writer = VideoWriter(
            path, fps, metadata=metadata, preset=preset, tune=None, fragmented=True, credentials=credentials
        )
        self.writer.__enter__()
        self.pending: deque = deque()
        self.lock = threading.Lock()
        self.path = path
        self.frames: queue.Queue = queue.Queue(maxsize=queue_frames)
        self.error: BaseException | None = None
        self.finished = False  # the mp4 is complete at ``path``
        self.thread = threading.Thread(target=self._encode, daemon=True, name="parla-encode")
        self.thread.start()

    def audio(self, samples: np.ndarray) -> None:
        with self.lock:
            self.pending.append(np.asarray(samples, np.float32))

    def _drain(self) -> None:
        with self.lock:
            while self.pending:
                self.writer.write_audio(self.pending.popleft())

    def _encode(self) -> None:
        while (frame := self.frames.get()) is not None:
            if self.error is None:
                try:
                    self._drain()
                    self.writer.write(frame)
                except BaseException as e:  # reported by the next write() or close()
                    self.error = e

    def write(self, frame: np.ndarray, index: int) -> None:
        if self.error is not None:
            raise self.error
        self.frames.put(frame)

    def close(self, ok: bool = True) -> None:
        self.frames.put(None)
        self.thread.join()
        if ok and self.error is None:
            self._drain()
            self.writer.__exit__(None, None, None)
            self.finished = True
            return
        err = self.error or KeyboardInterrupt()
        self.writer.__exit__(type(err), err, None)
        if ok and self.error is not None:
            raise self.error


WINDOW_HELP = (
    "the window sink needs OpenCV with a GUI and a display; Parla installs the headless OpenCV, so: "
    "pip uninstall -y opencv-python-headless && pip install opencv-python (and run where $DISPLAY is set); "
    "or use --sink web (the kiosk page, pip install 'parla[web]'), --sink file:OUT.mp4, or "
    "--sink stdout | ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -"
)


class WindowSink(Sink):
    def __init__(self, title: str = "Parla") -> None:
        import os
        import re
        import sys

        self.cv2 = require("cv2", "core")
        self.title = title
        gui = re.search(r"GUI:\s*(\S+)", self.cv2.getBuildInformation())
        headless = bool(gui and gui.group(1).upper() == "NONE")
        no_display = sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        )
        if headless or no_display:
            raise ParlaError(WINDOW_HELP)  # before the stream starts, not at its first frame

    def write(self, frame: np.ndarray, index: int) -> None:
        try:
            self.cv2.imshow(self.title, self.cv2.cvtColor(frame, self.cv2.COLOR_RGB2BGR))
            key = self.cv2.waitKey(1) & 0xFF
        except self.cv2.error as e:
            raise ParlaError(WINDOW_HELP) from e
        if key in (ord("q"), 27):
            raise StopStream

    def close(self, ok: bool = True) -> None:
        try:
            self.cv2.destroyWindow(self.title)
        except self.cv2.error:
            pass


class RawSink(Sink):
    """RGB24 bytes per frame (height x width x 3) to ``stream``, or each frame to ``callback(frame, index)``."""

    def __init__(self, stream=None, callback=None) -> None:
        if stream is None and callback is None:
            import sys

            stream = sys.stdout.buffer
        self.stream, self.callback = stream, callback
        self.announced = False

    def write(self, frame: np.ndarray, index: int) -> None:
        if self.callback is not None:
            self.callback(frame, index)
            return
        if not self.announced:
            import sys

            h, w = frame.shape[:2]
            print(f"parla: raw rgb24 {w}x{h} frames on stdout", file=sys.stderr)
            self.announced = True
        self.stream.write(np.ascontiguousarray(frame).tobytes())
        self.stream.flush()


def open_sink(
    spec: str,
    fps: float,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    metadata: dict | None = None,
    credentials=None,
):
    """A sink from the config's/CLI's ``video.sink``: window, stdout, web (the kiosk page) or file:PATH."""
    if spec.startswith("file:"):
        return FileSink(spec[5:], fps, metadata, credentials=credentials)
    if spec == "window":
        return WindowSink()
    if spec == "stdout":
        return RawSink()
    if spec == "web":
        from parla.edge.web import WebRTCSink, announce

        sink = WebRTCSink(fps, host, port, token)
        announce(sink)
        return sink
    raise ParlaError(f"sink {spec!r}: one of window, stdout, web, file:PATH")


def wait_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
