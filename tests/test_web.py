"""The kiosk page (issue 15): picture and sound over WebRTC into a real headless Chromium, and the server's guard
(token beyond loopback, 401 without it, 4xx for anything malformed, never a traceback, bounded viewers)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from parla.edge.web import MAX_PEERS, WebRTCSink, check_bind  # noqa: E402
from parla.errors import ParlaError  # noqa: E402

TOKEN = "t0ken-for-the-tests-only"
FPS = 30


def feed(sink: WebRTCSink, stop: threading.Event) -> None:
    """A synthetic stream at 30 fps: grey frames and a 440 Hz tone, paced like the engine."""
    i, t0 = 0, time.monotonic()
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    while not stop.is_set():
        sink.audio(tone[(i % 30) * 533 : (i % 30 + 1) * 533])
        sink.write(np.full((240, 320, 3), (i * 7) % 255, np.uint8), i)
        i += 1
        time.sleep(max(0.0, t0 + i / FPS - time.monotonic()))


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        pytest.skip("no Chromium (apt install chromium)")
    from aioice.ice import get_host_addresses

    if not get_host_addresses(use_ipv4=True, use_ipv6=False):  # ICE never gathers 127.0.0.1
        pytest.skip("no network interface besides loopback: WebRTC has no address to connect on")
    return exe


@pytest.mark.slow
def test_the_page_plays_picture_and_sound_in_chromium(tmp_path):
    """From the browser's own WebRTC statistics: ≥ 25 fps decoded and audio samples received, over ≥ 10 s."""
    sink = WebRTCSink(FPS, "127.0.0.1", 0, token=TOKEN)
    stop = threading.Event()
    threading.Thread(target=feed, args=(sink, stop), daemon=True).start()
    browser = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}", sink.url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            got = [s for s in sink.stats if s.get("video", {}).get("framesDecoded")]
            if len(got) >= 2 and got[-1]["t"] - got[0]["t"] >= 12_000:
                break
            time.sleep(0.5)
    finally:
        browser.kill()
        browser.wait()
        stop.set()
        sink.close()
    got = [s for s in sink.stats if s.get("video", {}).get("framesDecoded")]
    assert len(got) >= 2, "the page never reported decoded video"
    first, last = got[1], got[-1]  # skip the first report (connection set-up)
    seconds = (last["t"] - first["t"]) / 1000
    fps = (last["video"]["framesDecoded"] - first["video"]["framesDecoded"]) / seconds
    samples = last["audio"]["totalSamplesReceived"] - first["audio"]["totalSamplesReceived"]
    assert seconds >= 10
    assert fps >= 25, fps
    assert samples >= 0.9 * 48_000 * seconds, samples  # Opus decodes at 48 kHz


def request(url: str, *, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def guarded(caplog):
    sink = WebRTCSink(FPS, "127.0.0.1", 0, token=TOKEN)
    base = sink.url.split("?")[0]
    caplog.set_level(logging.DEBUG)
    yield base
    sink.close()
    assert "Traceback" not in caplog.text


def test_a_bind_beyond_loopback_needs_a_token():
    with pytest.raises(ParlaError, match="without a token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ParlaError, match="without a token"):
        check_bind("192.168.1.20", "")
    with pytest.raises(ParlaError, match="at least 16"):
        check_bind("0.0.0.0", "short")
    for blank in (" " * 20, "correct horse battery staple", "tab\tseparated-token-123"):
        with pytest.raises(ParlaError, match="without spaces"):
            check_bind("0.0.0.0", blank)
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", TOKEN)


def test_parla_stream_refuses_to_serve_the_network_without_a_token(face_path, speech_path, tmp_path):
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PARLA_WEB_TOKEN"}
    p = subprocess.run(
        [sys.executable, "-m", "parla", "stream", str(face_path), "--audio", str(speech_path), "--sink", "web",
         "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("parla: error: web sink: refusing to serve on 0.0.0.0")


def test_requests_without_the_token_get_401(guarded):
    assert request(guarded)[0] == 401
    assert request(guarded + "?token=wrong-token-wrong-token")[0] == 401
    assert request(guarded + "health", headers={"Authorization": "Bearer nope"})[0] == 401
    assert request(guarded + "offer", data=b"{}", method="POST")[0] == 401
    code, body = request(guarded + "?token=" + TOKEN)
    assert code == 200 and b"RTCPeerConnection" in body
    assert request(guarded + "health", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_a_foreign_host_name_is_refused(guarded):
    """DNS rebinding: a page on another site whose name resolves to 127.0.0.1 reaches the port with its own Host."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    port = guarded.rstrip("/").rsplit(":", 1)[1]
    assert request(guarded + "health", headers={**auth, "Host": f"evil.example:{port}"})[0] == 421
    assert request(guarded + "health", headers={**auth, "Host": f"localhost:{port}"})[0] == 200
    assert request(guarded + "health", headers=auth)[0] == 200


def test_a_header_that_is_not_utf8_gets_401_not_500(guarded):
    assert request(guarded + "health", headers={"Authorization": "Bearer \xff\xfe" + "x" * 20})[0] == 401


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "offer", b"not json"),
        ("POST", "offer", b"[1, 2, 3]"),
        ("POST", "offer", b'{"sdp": 5, "type": "offer"}'),
        ("POST", "offer", b'{"sdp": "v=0 garbage", "type": "offer"}'),
        ("POST", "offer", b'{"sdp": "x", "type": "answer"}'),
        ("POST", "offer", b"\xff\xfe\x00"),
        ("POST", "offer", b"{" * 70_000),
        ("POST", "stats", b"nonsense"),
        ("GET", "offer", None),
        ("GET", "nowhere", None),
        ("GET", "../../etc/passwd", None),
        ("DELETE", "", None),
    ],
)
def test_malformed_requests_get_4xx(guarded, method, path, body):
    code, _ = request(guarded + path, data=body, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    assert 400 <= code < 500, code


def test_viewers_are_bounded(guarded):
    import asyncio

    from aiortc import RTCConfiguration, RTCPeerConnection

    async def offers(n):
        pcs, out = [], []
        for _ in range(n):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            pcs.append(pc)
            body = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
            out.append(await asyncio.to_thread(request, guarded + "offer", data=body,
                                               headers={"Authorization": f"Bearer {TOKEN}"}))  # fmt: skip
        for pc in pcs:
            await pc.close()
        return [c for c, _ in out]

    codes = asyncio.run(offers(MAX_PEERS + 1))
    assert codes[:MAX_PEERS] == [200] * MAX_PEERS and codes[MAX_PEERS] == 503


def test_a_slot_whose_connection_never_comes_up_is_freed(monkeypatch):
    """Offers whose senders never connect (garbage viewers) hold their slots only until the connect timeout."""
    import asyncio
    import time

    from aiortc import RTCConfiguration, RTCPeerConnection

    from parla.edge import web

    monkeypatch.setattr(web, "CONNECT_TIMEOUT_S", 1.0)
    sink = WebRTCSink(FPS, "127.0.0.1", 0, token=TOKEN)
    base = sink.url.split("?")[0]

    async def offer() -> int:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        body = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
        code = (await asyncio.to_thread(request, base + "offer", data=body,
                                        headers={"Authorization": f"Bearer {TOKEN}"}))[0]  # fmt: skip
        await pc.close()  # the answer is never used: no connection comes up
        return code

    try:
        assert [asyncio.run(offer()) for _ in range(MAX_PEERS)] == [200] * MAX_PEERS
        assert asyncio.run(offer()) == 503
        t0 = time.monotonic()
        while sink.peers and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert not sink.peers  # every slot freed by the timeout
        assert asyncio.run(offer()) == 200  # and taken again
    finally:
        sink.close()
