"""Frame sinks of the streaming engine: ``write(frame, index)`` per frame, ``audio(samples)`` as audio streams in
(sinks that mux it keep it, others ignore it), ``close(ok)`` at the end (``ok=False`` on Ctrl-C or an error:
nothing half-written is left behind).

- ``FileSink``: an mp4 with the audio muxed (atomic: written under a temporary name, renamed on success);
- ``WindowSink``: an OpenCV window (q or Esc stops the stream);
- ``RawSink``: raw RGB24 frames to a binary stream (stdout) or to a callback;
- ``WebSink``: a local page (kiosk) on 127.0.0.1 by default; the browser polls the latest JPEG.
"""

from __future__ import annotations

import json
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
        self, path, fps: float, metadata: dict | None = None, preset: str = "ultrafast", queue_frames: int = 8
    ) -> None:
        import queue

        from parla.files import check_output
        from parla.media.video import VideoWriter

        check_output(path)
        self.writer = VideoWriter(path, fps, metadata=metadata, preset=preset, tune=None, fragmented=True)
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


class WindowSink(Sink):
    def __init__(self, title: str = "Parla") -> None:
        self.cv2 = require("cv2", "core")
        self.title = title

    def write(self, frame: np.ndarray, index: int) -> None:
        try:
            self.cv2.imshow(self.title, self.cv2.cvtColor(frame, self.cv2.COLOR_RGB2BGR))
            key = self.cv2.waitKey(1) & 0xFF
        except self.cv2.error as e:
            raise ParlaError(
                "no display for the window sink (headless OpenCV or no $DISPLAY): use --sink web, "
                "--sink file:OUT.mp4 or --sink stdout"
            ) from e
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


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Parla</title>
<style>html,body{margin:0;height:100%;background:#000}img{width:100%;height:100%;object-fit:contain}</style>
</head><body><img id="f" alt="">
<script>
const img = document.getElementById('f'); let last = -1;
async function tick() {
  try {
    const r = await fetch('/frame.jpg?after=' + last, {cache: 'no-store'});
    if (r.status === 200) {
      const n = parseInt(r.headers.get('X-Frame'));
      const url = URL.createObjectURL(await r.blob());
      img.onload = () => { URL.revokeObjectURL(url); fetch('/seen?frame=' + n, {method: 'POST'}); };
      img.src = url; last = n;
    }
  } catch (e) {}
  setTimeout(tick, 15);
}
tick();
</script></body></html>"""


class WebSink(Sink):
    """Serves the page and the latest frame (JPEG) on host:port; only the newest frame is kept (bounded)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 85) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.cv2 = require("cv2", "core")
        self.quality = quality
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.index = -1
        self.seen: deque = deque(maxlen=1000)  # frame numbers the page reported as displayed
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path == "/" or self.path.startswith("/index"):
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8")
                elif self.path.startswith("/frame.jpg"):
                    after = int(self.path.partition("after=")[2] or -1)
                    with sink.cond:
                        sink.cond.wait_for(lambda: sink.index > after, timeout=1.0)
                        jpeg, index = sink.jpeg, sink.index
                    if jpeg is None or index <= after:
                        self._send(204, b"", "text/plain")
                    else:
                        self._send(200, jpeg, "image/jpeg", {"X-Frame": str(index)})
                elif self.path == "/stats":
                    body = json.dumps({"frame": sink.index, "seen": len(sink.seen)}).encode()
                    self._send(200, body, "application/json")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                if self.path.startswith("/seen"):
                    sink.seen.append(int(self.path.partition("frame=")[2] or -1))
                self._send(204, b"", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise ParlaError(
                f"web sink: cannot listen on {host}:{port} ({e.strerror}); pick another video.web_port"
            ) from e
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="parla-web").start()

    def write(self, frame: np.ndarray, index: int) -> None:
        ok, buf = self.cv2.imencode(
            ".jpg", self.cv2.cvtColor(frame, self.cv2.COLOR_RGB2BGR), [self.cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if ok:
            with self.cond:
                self.jpeg, self.index = buf.tobytes(), index
                self.cond.notify_all()

    def close(self, ok: bool = True) -> None:
        self.server.shutdown()
        self.server.server_close()


def open_sink(spec: str, fps: float, *, host: str = "127.0.0.1", port: int = 8080, metadata: dict | None = None):
    """A sink from the config's/CLI's ``video.sink``: window, stdout, web or file:PATH."""
    if spec.startswith("file:"):
        return FileSink(spec[5:], fps, metadata)
    if spec == "window":
        return WindowSink()
    if spec == "stdout":
        return RawSink()
    if spec == "web":
        sink = WebSink(host, port)
        import sys

        print(f"parla: open {sink.url} in a browser (kiosk)", file=sys.stderr)
        return sink
    raise ParlaError(f"sink {spec!r}: one of window, stdout, web, file:PATH")


def wait_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
