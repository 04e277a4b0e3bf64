"""Parla as the face of a Pipecat assistant, fully offline: text typed on stdin -> Parla's TTS (a Pipecat TTS
service) -> ParlaVideoService -> Pipecat's small WebRTC transport -> a browser page on 127.0.0.1.

    pip install -e '.[pipecat,tts]'
    python examples/pipecat_kiosk.py parla/assets/demo/portrait.jpg      # then open the printed address
    # type a sentence and Enter: the face says it; an empty line (Enter alone) interrupts it, as a user's voice would

Replace the stdin lines with your STT -> LLM (any Pipecat services) to make it an assistant. One viewer at a time
(a new page takes the stream over). Loopback by default; any other --host needs --token (or PARLA_WEB_TOKEN), which
the page carries as ?token=..., checked on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from collections import deque

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Parla</title><style>
html,body{margin:0;width:100%;height:100%;background:#000;overflow:hidden}
video{position:fixed;inset:0;width:100vw;height:100vh;object-fit:contain}
#tap{position:fixed;inset:0;display:none;align-items:center;justify-content:center;color:#fff;font:24px sans-serif}
</style></head><body><video id="v" autoplay playsinline></video><div id="tap">Tap for sound</div><script>
const token = new URLSearchParams(location.search).get("token") || "";
const auth = token ? {"Authorization": "Bearer " + token} : {};
const v = document.getElementById("v"), tap = document.getElementById("tap");
function play() { v.play().then(() => { tap.style.display = "none"; }).catch(() => {
  v.muted = true; v.play(); tap.style.display = "flex"; }); }
tap.onclick = () => { v.muted = false; play(); };
let pc = null;
async function connect() {
  pc = new RTCPeerConnection();
  pc.addTransceiver("audio", {direction: "recvonly"});  // Pipecat's order: audio, then video
  pc.addTransceiver("video", {direction: "recvonly"});
  const stream = new MediaStream();
  pc.ontrack = (e) => { stream.addTrack(e.track); v.srcObject = stream; play(); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => { if (pc.iceGatheringState === "complete") ok();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") ok(); }; });
  const r = await fetch("api/offer", {method: "POST", headers: {...auth, "Content-Type": "application/json"},
    body: JSON.stringify({sdp: pc.localDescription.sdp, type: pc.localDescription.type})});
  await pc.setRemoteDescription(await r.json());
}
async function report() {  // the browser's own statistics, for tests and benchmarks
  if (pc && pc.connectionState === "connected") {
    const s = {t: Date.now(), video: {}, audio: {}};
    (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp") s[r.kind] = r; });
    fetch("api/stats", {method: "POST", headers: {...auth, "Content-Type": "application/json"},
      body: JSON.stringify(s)}).catch(() => {});
  }
  setTimeout(report, 1000);
}
connect(); report();
</script></body></html>"""


class Kiosk:
    """The web server, and one Pipecat pipeline per connected page: text -> TTS -> face -> WebRTC."""

    def __init__(self, portrait: str, token: str | None, fps: int = 25, backend: str = "onnxruntime") -> None:
        from parla.edge import Avatar

        self.token, self.fps = token, fps
        self.host = "127.0.0.1"  # the address served (serve() sets it)
        # one thread per model: the WebRTC encoder, the TTS and the page share these cores (two threads each
        # dropped frames on 2 cores); onnxruntime: 80 MB less resident than OpenVINO at the same 25 fps here
        over = {"video.fps": fps, "threads": 1, "backend": backend}
        self.avatar = Avatar.from_image(portrait, "x86-cpu", overrides=over)
        self.worker = None
        self.task: asyncio.Task | None = None
        self.face = None  # the running ParlaVideoService
        self.browser: deque = deque(maxlen=600)  # the page's WebRTC statistics, one report a second

    def app(self):
        from aiohttp import web

        from parla.edge.web import guard

        app = web.Application(client_max_size=64 * 1024, middlewares=[guard(self.host, self.token)])
        app.router.add_get("/", lambda r: web.Response(text=PAGE, content_type="text/html"))
        app.router.add_post("/api/offer", self.offer)
        app.router.add_post("/api/stats", self.stats)
        return app

    async def stats(self, request):
        from aiohttp import web

        try:
            body = await request.json()
        except Exception:
            raise web.HTTPBadRequest(text="expected a JSON object\n") from None
        if isinstance(body, dict):
            self.browser.append(body)
        return web.Response(status=204)

    async def offer(self, request):
        from aiohttp import web
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

        try:
            body = await request.json()
            sdp, kind = body["sdp"], body["type"]
            assert isinstance(sdp, str) and kind == "offer"
        except Exception:
            raise web.HTTPBadRequest(text='expected {"sdp": "...", "type": "offer"}\n') from None
        await self.stop()  # one viewer: the newest page takes over
        connection = SmallWebRTCConnection()
        try:
            await connection.initialize(sdp=sdp, type=kind)
        except Exception as e:
            raise web.HTTPBadRequest(text=f"unusable offer ({type(e).__name__})\n") from None
        self.task = asyncio.create_task(self.run(connection))
        return web.json_response(connection.get_answer())

    async def run(self, connection) -> None:
        from pipecat.pipeline.pipeline import Pipeline
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker
        from pipecat.transports.base_transport import TransportParams
        from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
        from pipecat.workers.runner import WorkerRunner

        from parla.integrations.pipecat import ParlaTTSService, ParlaVideoService

        h, w = self.avatar.portrait.image.shape[:2]
        params = TransportParams(
            audio_out_enabled=True,
            audio_out_sample_rate=24_000,
            video_out_enabled=True,
            video_out_is_live=True,
            video_out_width=w,
            video_out_height=h,
            video_out_framerate=self.fps,
        )
        transport = SmallWebRTCTransport(webrtc_connection=connection, params=params)
        self.face = ParlaVideoService(self.avatar)
        pipeline = Pipeline([ParlaTTSService(), self.face, transport.output()])
        self.worker = PipelineWorker(pipeline, params=PipelineParams(audio_out_sample_rate=24_000))
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        try:
            await runner.run()
        finally:
            self.worker = None

    async def say(self, text: str) -> None:
        """A line of text: spoken; an empty line: the current reply is interrupted."""
        from pipecat.frames.frames import InterruptionFrame, TTSSpeakFrame

        if self.worker is None:
            print("parla: no page connected yet", file=sys.stderr)
            return
        await self.worker.queue_frame(TTSSpeakFrame(text) if text.strip() else InterruptionFrame())

    async def stop(self) -> None:
        from pipecat.frames.frames import CancelFrame

        if self.worker is not None:
            await self.worker.queue_frame(CancelFrame())
        if self.task is not None:
            await asyncio.wait([self.task], timeout=5)
            self.task = None


async def serve(kiosk: Kiosk, host: str, port: int, lines=None) -> None:
    """Serve until stdin closes (or forever without it); ``lines``: an asyncio.Queue of text lines."""
    from aiohttp import web

    kiosk.host = host
    runner = web.AppRunner(kiosk.app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"parla: open http://{shown}:{port}/" + (f"?token={kiosk.token}" if kiosk.token else ""), file=sys.stderr)
    try:
        while True:
            line = await lines.get() if lines is not None else await asyncio.Future()
            if line is None:
                break
            await kiosk.say(line)
    finally:
        if kiosk.face is not None and kiosk.face.stats is not None:  # what the face did, for benchmarks
            print("parla: stats " + json.dumps(kiosk.face.stats.summary()), file=sys.stderr, flush=True)
        await kiosk.stop()
        await runner.cleanup()


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
    from parla.edge.sources import text_lines

    q: asyncio.Queue = asyncio.Queue(maxsize=64)

    def read() -> None:
        for line in text_lines(sys.stdin.buffer):  # bounded lines; not UTF-8: skipped with a warning
            asyncio.run_coroutine_threadsafe(q.put(line.strip()), loop).result()
        asyncio.run_coroutine_threadsafe(q.put(None), loop).result()

    threading.Thread(target=read, daemon=True).start()
    return q


def main(argv: list[str] | None = None) -> int:
    from parla.edge.engine import lean_malloc
    from parla.edge.web import TOKEN_ENV, check_bind
    from parla.errors import ParlaError

    lean_malloc()

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("portrait")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV))
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino", "tflite"])
    args = p.parse_args(argv)
    try:
        check_bind(args.host, args.token)
        kiosk = Kiosk(args.portrait, args.token, backend=args.backend)
    except ParlaError as e:
        print(f"parla: {e}", file=sys.stderr)
        return 2

    async def run() -> None:
        await serve(kiosk, args.host, args.port, stdin_lines(asyncio.get_running_loop()))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        kiosk.avatar.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
