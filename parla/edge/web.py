"""The kiosk page: picture and sound over WebRTC (aiortc), the page and its signalling over aiohttp.

Why WebRTC (docs/decisions.md, "The kiosk page"): it is what browsers use for live video with sound; the browser
keeps audio and video in sync by itself, from the RTCP sender reports, and its own statistics (frames decoded,
audio samples received, jitter buffers) say what the viewer got.

Sync: aiortc maps RTP to wall time when a packet is *sent*, so the two tracks are released on one clock. Video is
sent as the engine renders each frame; audio, which the engine receives ahead of its frames, is held until the
video has reached it (a 20-ms block of audio leaves when the frame of its instant has been rendered).

Security: loopback by default; any other address needs a token (``--token`` or ``PARLA_WEB_TOKEN``), checked on
every request (``Authorization: Bearer`` or the page's ``?token=``), compared in constant time. Request bodies are
capped, peers are capped, and no request can produce a traceback (a malformed one gets a 4xx).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import sys
import threading
import time
from collections import deque
from fractions import Fraction

import numpy as np

from parla.errors import ParlaError, require

log = logging.getLogger("parla")

AUDIO_RATE = 16_000
AUDIO_BLOCK = 320  # samples: 20 ms, one Opus frame
AUDIO_KEEP_S = 10.0  # seconds of audio kept for late peers and slow video (bounded)
MAX_PEERS = 4
CONNECT_TIMEOUT_S = 15.0  # a viewer slot whose WebRTC connection is not up by then is freed (an offer never answered)
MAX_BODY = 64 * 1024  # bytes of a request body (an SDP offer is ~5 KB)
MAX_SIDE = 1280  # px: larger frames are scaled down before the VP8 encoder
POLL_S = 0.005
TOKEN_ENV = "PARLA_WEB_TOKEN"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ParlaError(
            f"web sink: refusing to serve on {host} without a token; set --token (or {TOKEN_ENV}), or use "
            "--host 127.0.0.1"
        )
    if token is not None and (len(token) < 16 or any(ch.isspace() for ch in token) or not token.isprintable()):
        raise ParlaError("web sink: the token must be at least 16 printable characters without spaces (e.g. python "
                         "-c 'import secrets; print(secrets.token_urlsafe())')")  # fmt: skip


def host_allowed(host_header: str, bound: str) -> bool:
    """The request's ``Host`` names the address this server is bound to: a page on another site that resolves its
    own name to 127.0.0.1 (DNS rebinding) cannot reach a loopback server. A server bound to every interface needs a
    token (``check_bind``) and takes any name."""
    h = host_header.strip().lower()
    name = h[1 : h.find("]")] if h.startswith("[") else h.rsplit(":", 1)[0] if h.count(":") == 1 else h
    if bound in ("0.0.0.0", "::"):
        return True
    if is_loopback(bound):
        return name in ("localhost", bound.lower()) or is_loopback(name)
    return name == bound.lower()


def authorized(request, token: str | None) -> bool:
    """The request carries ``token`` (``Authorization: Bearer`` or the page's ``?token=``), compared in constant
    time; always true without a token."""
    if not token:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    given = given or request.query.get("token", "")
    # a header that is not UTF-8 arrives with surrogates: compared as bytes, it is refused, not a server error
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def guard(host: str, token: str | None):
    """The aiohttp middleware of every Parla page server (the kiosk sink, the Pipecat example): the ``Host`` named
    (421), the token (401), and never a traceback, to the client or in the log (500)."""
    from aiohttp import web

    @web.middleware
    async def middleware(request, handler):
        if not host_allowed(request.headers.get("Host", ""), host):
            return web.Response(status=421, text="unknown host\n")
        if not authorized(request, token):
            return web.Response(status=401, text="token required\n", headers={"WWW-Authenticate": "Bearer"})
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as e:
            log.debug("web server: %s %s: %s: %s", request.method, request.path, type(e).__name__, e)
            return web.Response(status=500, text="internal error\n")

    return middleware


class Feed:
    """What the engine hands over (any thread) and the tracks read (the event loop): the newest frame and a ring of
    recent audio, both on the stream's own timeline (frame i is at i / fps s, sample n at n / 16000 s)."""

    def __init__(self, fps: float, mark: bool = False) -> None:
        self.fps = fps
        self.cv2 = require("cv2", "core")
        self.lock = threading.Lock()
        self.frame: np.ndarray | None = None
        self.index = -1
        self.closed = False
        self.mark = mark
        self.ring = np.zeros(int(AUDIO_KEEP_S * AUDIO_RATE), np.int16)
        self.audio_end = 0  # samples received since the stream began

    def put_frame(self, frame: np.ndarray, index: int) -> None:
        cv2 = self.cv2
        h, w = frame.shape[:2]
        if max(h, w) > MAX_SIDE:
            s = MAX_SIDE / max(h, w)
            frame = cv2.resize(frame, (round(w * s) // 2 * 2, round(h * s) // 2 * 2), interpolation=cv2.INTER_AREA)
        elif h % 2 or w % 2:  # yuv420p needs even sides
            frame = frame[: h - h % 2, : w - w % 2]
        if self.mark:
            frame = mark_frame(frame, index)
        with self.lock:
            self.frame, self.index = frame, index

    def put_audio(self, samples: np.ndarray) -> None:
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[-len(self.ring) :]
        with self.lock:
            n, cap = len(pcm), len(self.ring)
            start = self.audio_end % cap
            first = min(n, cap - start)
            self.ring[start : start + first] = pcm[:first]
            self.ring[: n - first] = pcm[first:]
            self.audio_end += n

    def read_audio(self, pos: int, n: int) -> np.ndarray | None:
        """Samples [pos, pos + n) if they are still in the ring, else None."""
        with self.lock:
            cap = len(self.ring)
            if pos < self.audio_end - cap or pos + n > self.audio_end:
                return None
            idx = (np.arange(pos, pos + n) % cap).astype(np.int64)
            return self.ring[idx].copy()

    def video_time(self) -> float:
        """Seconds of the stream's timeline that the video has reached (the end of the newest frame)."""
        return (self.index + 1) / self.fps


MARK_BITS, MARK_CELL = 16, 16  # a frame-number strip for latency measurements (benchmarks/kiosk_latency.py)


def mark_frame(frame: np.ndarray, index: int) -> np.ndarray:
    """Draw ``index`` as 16 black/white cells of 16x16 px in the top-left corner (read back by the page)."""
    out = frame.copy()
    for b in range(MARK_BITS):
        out[:MARK_CELL, b * MARK_CELL : (b + 1) * MARK_CELL] = 255 if (index >> b) & 1 else 0
    return out


def _video_track(feed: Feed):
    av = require("av", "core")
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class VideoTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.last = -1

        async def recv(self):
            while True:
                if feed.closed:
                    self.stop()
                    raise MediaStreamError
                with feed.lock:
                    index, frame = feed.index, feed.frame
                if index > self.last and frame is not None:
                    break
                await asyncio.sleep(POLL_S)
            self.last = index
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = round(index * 90_000 / feed.fps), Fraction(1, 90_000)
            return vf

    return VideoTrack()


def _audio_track(feed: Feed):
    av = require("av", "core")
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class AudioTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pos: int | None = None

        def _due(self) -> np.ndarray | None:
            """The next 20-ms block once the video has reached its end, else None."""
            if feed.index < 0:
                return None
            if self.pos is None or self.pos < feed.audio_end - len(feed.ring):  # join (or rejoin) at the video
                self.pos = int(feed.index / feed.fps * AUDIO_RATE) // AUDIO_BLOCK * AUDIO_BLOCK
            if (self.pos + AUDIO_BLOCK) / AUDIO_RATE > feed.video_time():
                return None
            block = feed.read_audio(self.pos, AUDIO_BLOCK)
            # None: the video is ahead of the audio (a source that stalled); silence keeps the clock
            return np.zeros(AUDIO_BLOCK, np.int16) if block is None else block

        async def recv(self):
            while (block := self._due()) is None:
                if feed.closed:
                    self.stop()
                    raise MediaStreamError
                await asyncio.sleep(POLL_S)
            assert self.pos is not None
            af = av.AudioFrame.from_ndarray(block[None], format="s16", layout="mono")
            af.sample_rate, af.pts, af.time_base = AUDIO_RATE, self.pos, Fraction(1, AUDIO_RATE)
            self.pos += AUDIO_BLOCK
            return af

    return AudioTrack()


class WebRTCSink:
    """``--sink web``: the kiosk page on host:port, one WebRTC connection per open page (at most MAX_PEERS)."""

    every_frame = False

    def __init__(
        self, fps: float, host: str = "127.0.0.1", port: int = 8080, token: str | None = None, mark: bool = False
    ) -> None:
        require("aiortc", "web")
        require("aiohttp", "web")
        check_bind(host, token)
        self.feed = Feed(fps, mark)
        self.token, self.host = token, host
        self.stats: deque = deque(maxlen=600)  # what the pages report (browser statistics, displayed frames)
        self.peers: set = set()
        self._pending: set = set()  # the timers that free slots whose connection never came up
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="parla-web")
        self.thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._start(host, port), self.loop).result(timeout=20)
        except OSError as e:
            self._stop_loop()
            raise ParlaError(f"web sink: cannot listen on {host}:{port} ({e.strerror}); pick another --port") from e
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/" + (f"?token={token}" if token else "")

    # engine side ----------------------------------------------------------------------------------------------
    def audio(self, samples: np.ndarray) -> None:
        self.feed.put_audio(samples)

    def write(self, frame: np.ndarray, index: int) -> None:
        self.feed.put_frame(frame, index)

    def close(self, ok: bool = True) -> None:
        self.feed.closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10)
        except Exception as e:  # closing must not hide the stream's own outcome
            log.debug("web sink: shutdown: %s", e)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    # server side ----------------------------------------------------------------------------------------------
    async def _start(self, host: str, port: int) -> int:
        from aiohttp import web

        logging.getLogger("aiohttp.access").setLevel(logging.CRITICAL)
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        logging.getLogger("aioice").setLevel(logging.WARNING)
        app = web.Application(client_max_size=MAX_BODY, middlewares=[guard(self.host, self.token)])
        app.router.add_get("/", self._page)
        app.router.add_post("/offer", self._offer)
        app.router.add_post("/stats", self._stats)
        app.router.add_get("/health", self._health)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, backlog=16)
        await site.start()
        server = site._server  # the port actually bound (port 0: any free one)
        return int(server.sockets[0].getsockname()[1]) if server is not None else port  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*(pc.close() for pc in list(self.peers)), return_exceptions=True)
        self.peers.clear()
        await self.runner.cleanup()

    async def _page(self, request):
        from aiohttp import web

        return web.Response(text=PAGE.replace("__MARK__", "true" if self.feed.mark else "false"),
                            content_type="text/html", headers={"Cache-Control": "no-store"})  # fmt: skip

    async def _health(self, request):
        from aiohttp import web

        return web.json_response({"frame": self.feed.index, "peers": len(self.peers)})

    async def _json(self, request) -> dict:
        from aiohttp import web

        try:
            body = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="expected a JSON object\n") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object\n")
        return body

    async def _offer(self, request):
        from aiohttp import web
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        body = await self._json(request)
        sdp, kind = body.get("sdp"), body.get("type")
        if not isinstance(sdp, str) or kind != "offer":
            raise web.HTTPBadRequest(text='expected {"sdp": "...", "type": "offer"}\n')
        if len(self.peers) >= MAX_PEERS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_PEERS} viewers\n")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: offline, and the page is local or LAN
        self.peers.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.peers.discard(pc)
                await pc.close()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for t in pc.getTransceivers():
                if t.kind == "video":
                    pc.addTrack(_video_track(self.feed))
                elif t.kind == "audio":
                    pc.addTrack(_audio_track(self.feed))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # a malformed or unsupported offer
            self.peers.discard(pc)
            await pc.close()
            raise web.HTTPBadRequest(text=f"unusable offer ({type(e).__name__})\n") from None

        async def expire() -> None:  # the slot is a viewer's only once the connection is up
            await asyncio.sleep(CONNECT_TIMEOUT_S)
            if pc.connectionState != "connected" and pc in self.peers:
                self.peers.discard(pc)
                await pc.close()

        self._pending.add(task := asyncio.ensure_future(expire()))
        task.add_done_callback(self._pending.discard)
        return web.json_response({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})

    async def _stats(self, request):
        from aiohttp import web

        body = await self._json(request)
        body["received"] = time.time()
        self.stats.append(body)
        return web.Response(status=204)


PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>Parla</title><style>
html,body{margin:0;width:100%;height:100%;overflow:hidden;background:#000;cursor:none}
video{position:fixed;inset:0;width:100vw;height:100vh;object-fit:contain;background:#000}
#tap{position:fixed;inset:0;display:none;align-items:center;justify-content:center;color:#fff;
font:24px sans-serif;background:rgba(0,0,0,.4);cursor:pointer}
</style></head><body><video id="v" autoplay playsinline></video><div id="tap">Tap for sound</div>
<script>
const MARK = __MARK__;
const token = new URLSearchParams(location.search).get("token") || "";
const auth = token ? {"Authorization": "Bearer " + token} : {};
const v = document.getElementById("v"), tap = document.getElementById("tap");
let pc = null, timer = null, shown = [];
function retry() { clearTimeout(timer); timer = setTimeout(connect, 1000); }
function play() { v.play().then(() => { tap.style.display = "none"; }).catch(() => {
  v.muted = true; v.play(); tap.style.display = "flex"; }); }
tap.onclick = () => { v.muted = false; play(); };
async function connect() {
  if (pc) { try { pc.close(); } catch (e) {} }
  const me = pc = new RTCPeerConnection();
  me.addTransceiver("video", {direction: "recvonly"});
  me.addTransceiver("audio", {direction: "recvonly"});
  const stream = new MediaStream();
  me.ontrack = (e) => { stream.addTrack(e.track); v.srcObject = stream; play();
    e.track.onended = () => { if (pc === me) retry(); }; };
  me.onconnectionstatechange = () => {
    if (pc === me && ["failed", "closed", "disconnected"].includes(me.connectionState)) retry(); };
  try {
    await me.setLocalDescription(await me.createOffer());
    await new Promise((ok) => { if (me.iceGatheringState === "complete") ok();
      me.onicegatheringstatechange = () => { if (me.iceGatheringState === "complete") ok(); }; });
    const r = await fetch("offer", {method: "POST", headers: {...auth, "Content-Type": "application/json"},
      body: JSON.stringify({sdp: me.localDescription.sdp, type: me.localDescription.type})});
    if (!r.ok) throw new Error("offer: " + r.status);
    await me.setRemoteDescription(await r.json());
  } catch (e) { retry(); }
}
const canvas = document.createElement("canvas"), ctx = canvas.getContext("2d", {willReadFrequently: true});
function onFrame(now, meta) {
  canvas.width = 256; canvas.height = 16;
  ctx.drawImage(v, 0, 0, 256, 16, 0, 0, 256, 16);
  const px = ctx.getImageData(0, 0, 256, 16).data; let n = 0;
  for (let b = 0; b < 16; b++) if (px[(8 * 256 + b * 16 + 8) * 4] > 127) n |= 1 << b;
  shown.push([n, performance.timeOrigin + meta.expectedDisplayTime]);
  v.requestVideoFrameCallback(onFrame);
}
if (MARK && v.requestVideoFrameCallback) v.requestVideoFrameCallback(onFrame);
async function report() {
  if (pc && pc.connectionState === "connected") {
    const s = {t: Date.now(), video: {}, audio: {}};
    (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && (r.kind === "video" || r.kind === "audio"))
      s[r.kind] = r; });
    s.shown = shown; shown = [];
    fetch("stats", {method: "POST", headers: {...auth, "Content-Type": "application/json"},
      body: JSON.stringify(s)}).catch(() => {});
  }
  setTimeout(report, 1000);
}
connect(); report();
</script></body></html>"""


def announce(sink: WebRTCSink) -> None:
    print(f"parla: kiosk page at {sink.url}", file=sys.stderr)
