"""The streaming runtime: streaming motion, the Avatar API, the threaded engine (pacing, dropping, Ctrl-C), the
sources (fake PyAudio with PyAudio's API, stdin PCM), the sinks (mp4, raw, web page in headless Chromium), the
camera wait, and `parla bench`'s report. Runs the bundled INT8 student on onnxruntime (installed with .[export])."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from parla.audio.io import SAMPLE_RATE

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def avatar(face_path):
    from parla.edge.avatar import Avatar

    with Avatar.from_image(
        face_path, "x86-cpu", overrides={"backend": "onnxruntime", "device": "cpu", "threads": 2}
    ) as av:
        yield av


def test_streaming_motion_matches_the_offline_net(avatar, speech):
    """The net's output per frame equals the whole-clip (offline) output: the window covers the receptive field
    and each frame waits for exactly the trained look-ahead."""
    torch = pytest.importorskip("torch")
    from parla.edge.backends.torch_backend import TorchBackend

    s = avatar.settings
    net = TorchBackend(avatar.config.model, "cpu", kind="lips").module
    capture = avatar.new_motion()  # the inputs the synthesizer joins (log-mel, and the phoneme features it got)
    joined: list = []
    capture.push_mel = joined.append
    for i in range(0, len(speech), 640):
        capture.push(speech[i : i + 640])
    mel = (np.concatenate(joined) - s.mel_mean) / s.mel_std
    with torch.no_grad():
        z_off = net(torch.from_numpy(mel.T[None].astype(np.float32)))[0].numpy()  # (K, M)
    motion = avatar.new_motion()
    fms = [fm for i in range(0, len(speech), 640) for fm in motion.push(speech[i : i + 640])]
    assert [fm.index for fm in fms] == list(range(len(fms)))
    late = int(np.ceil(motion.latency_samples / SAMPLE_RATE * 25))
    assert len(fms) >= int(len(speech) / SAMPLE_RATE * 25) - late - 1  # all but the look-ahead at the very end
    fps = avatar.config.video.fps
    errs = []
    for fm in fms[15:]:  # past the receptive field (37 mel frames): the start differs by its padding only
        t = fm.index / fps * 100
        lo = int(np.floor(t))
        want = z_off[:, lo] * (1 - (t - lo)) + z_off[:, lo + 1] * (t - lo)
        errs.append(np.abs(fm.z - want).max())
    assert max(errs) < 2e-3, max(errs)


def test_stream_is_chunk_size_invariant_and_complete(avatar, speech):
    a = speech[: SAMPLE_RATE * 2]
    f1 = list(avatar.stream(a[i : i + 320] for i in range(0, len(a), 320)))
    f2 = list(avatar.stream(a[i : i + 3000] for i in range(0, len(a), 3000)))
    assert len(f1) == len(f2) == 50
    # The same motion up to float rounding (coefficients within ~0.05 canonical px), so the same frames, except
    # for a thin line of pixels where nearly touching lips fold the warp (measured: at most 0.06 % of a frame).
    off = [np.mean(np.abs(x.astype(int) - y) > 2) for x, y in zip(f1, f2, strict=True)]
    assert max(off) < 0.005
    assert f1[0].shape == avatar.portrait.image.shape


def test_silence_keeps_the_mouth_closed_and_the_face_alive(avatar):
    motion = avatar.new_motion()
    fms = [fm for _ in range(100) for fm in motion.push(np.zeros(640, np.float32))]  # 4 s of nothing
    assert all(fm.mouth_rest == 1.0 and not fm.voiced for fm in fms)
    pose = np.stack([fm.pose for fm in fms])
    assert pose[:, 4].std() > 0.05  # breathing / idle head drift: not a frozen picture


def test_motion_state_is_bounded(avatar):
    motion = avatar.new_motion()
    motion.run_lips = lambda x: np.zeros((1, avatar.settings.basis.n_components, x.shape[-1]), np.float32)
    rng = np.random.default_rng(0)
    for _ in range(3000):  # 2 minutes of 40 ms chunks
        motion.push(rng.normal(0, 0.05, 640).astype(np.float32))
    assert len(motion.mel._buf) < 1000 and len(motion.energy) <= 64 and len(motion.level) <= 250
    late = motion.latency_samples / SAMPLE_RATE * 25  # frames still waiting for their look-ahead
    assert motion.next_heard == pytest.approx(3000 * 640 / SAMPLE_RATE * 25 - late, abs=5) and len(motion.heard) <= 1
    if motion.phonemes is not None:  # the streaming encoder keeps its window, no more
        assert len(motion.phonemes.buf) <= (motion.phonemes.past + motion.phonemes.future + 4) * 320 + 640


class SlowRenderer:
    """Wraps a renderer with a fixed extra delay, to make the device 'too slow'."""

    def __init__(self, inner, delay_s):
        self.inner, self.delay, self.timer = inner, delay_s, inner.timer

    def render(self, fm):
        time.sleep(self.delay)
        return self.inner.render(fm)


def test_engine_real_time_file_sink_matches_audio(avatar, speech, tmp_path):
    from parla.edge.engine import StreamEngine
    from parla.edge.sinks import FileSink
    from parla.edge.sources import ArraySource
    from parla.media.video import probe_video as probe

    a = speech[: SAMPLE_RATE * 3]
    out = tmp_path / "s.mp4"
    eng = StreamEngine(
        ArraySource(a, 40, speed=2.0),
        avatar.new_motion(),
        avatar.new_renderer(),
        FileSink(out, 25, avatar.metadata),
        fps=25,
        queue_frames=256,
    )  # room for every frame
    stats = eng.run()
    assert stats.frames == 75 and stats.dropped == 0
    assert stats.wall_s > 1.4  # paced by the source (3 s of audio at 2x), not as fast as possible
    info = probe(out)
    assert info.n_frames == 75 and info.has_audio
    assert len(stats.latency_ms) == 75 and np.percentile(stats.latency_ms, 50) > 0


def test_engine_drops_frames_instead_of_growing_latency(avatar, speech, tmp_path):
    from parla.edge.engine import StreamEngine
    from parla.edge.sinks import FileSink
    from parla.edge.sources import ArraySource
    from parla.media.video import probe_video as probe

    a = speech[: SAMPLE_RATE * 2]
    out = tmp_path / "d.mp4"
    motion = avatar.new_motion()
    eng = StreamEngine(
        ArraySource(a, 40, speed=1.0),
        motion,
        SlowRenderer(avatar.new_renderer(), 0.08),
        FileSink(out, 25),
        fps=25,
        queue_frames=2,
    )
    stats = eng.run()
    assert stats.dropped > 10
    assert stats.frames + stats.dropped == 50
    # bounded by the queue, not by the stream's length (the end of the input's last frames, all rendered, aside):
    # an unbounded queue would make the last frames wait for every frame before them, so their latency would grow
    # along the stream (about 3x from the first third to the last here); no absolute time limit
    late = int(np.ceil(motion.latency_samples / SAMPLE_RATE * 25)) + 1
    lat = np.array(list(stats.latency_ms)[:-late])
    third = len(lat) // 3
    assert lat[-third:].mean() < 1.5 * lat[:third].mean() + 100
    assert probe(out).n_frames == 50  # dropped slots hold the previous picture: A/V stay aligned


def test_a_burst_before_the_first_frame_is_back_filled(avatar, speech, tmp_path):
    """1-s chunks into a queue of 2: the first frames are dropped before any is rendered; the file still gets a
    picture in every slot (the first rendered one), so it is as long as its audio (issue 16: it was 0.88 s of
    video for 2.5 s of speech)."""
    from parla.edge.engine import StreamEngine
    from parla.edge.sinks import FileSink
    from parla.edge.sources import ArraySource
    from parla.media.video import probe_video as probe

    out = tmp_path / "b.mp4"
    eng = StreamEngine(
        ArraySource(speech[: SAMPLE_RATE * 2], 1000, speed=1.0),
        avatar.new_motion(),
        avatar.new_renderer(),
        FileSink(out, 25),
        fps=25,
        queue_frames=2,
    )
    stats = eng.run()
    assert stats.dropped > 10
    assert probe(out).n_frames == 50


def test_ctrl_c_keeps_the_recording_up_to_it(avatar, speech, tmp_path):
    from parla.edge.engine import StreamEngine
    from parla.edge.sinks import FileSink
    from parla.edge.sources import ArraySource
    from parla.media.video import probe_video as probe

    out = tmp_path / "x.mp4"
    sink = FileSink(out, 25)
    real_write = sink.write

    def write(frame, index):
        if index == 10:
            raise KeyboardInterrupt
        real_write(frame, index)

    sink.write = write
    eng = StreamEngine(
        ArraySource(speech, 40, speed=0), avatar.new_motion(), avatar.new_renderer(), sink, fps=25, queue_frames=256
    )
    with pytest.raises(KeyboardInterrupt):
        eng.run()
    assert eng.stats.interrupted and sink.finished
    assert list(tmp_path.iterdir()) == [out]  # finished and kept, no temporary file beside it
    info = probe(out)
    assert info.n_frames == 10 and info.has_audio


class FakePyAudio:
    """PyAudio's API shape: PyAudio(), paInt16, open(...) -> stream.read(n, exception_on_overflow), stop_stream,
    close, terminate, get_device_count, get_device_info_by_index. Plays a 48 kHz stereo tone."""

    paInt16 = 8

    class _Stream:
        def __init__(self, rate, channels, frames):
            self.rate, self.channels, self.frames, self.pos, self.closed = rate, channels, frames, 0, False

        def read(self, n, exception_on_overflow=True):
            t = (self.pos + np.arange(n)) / self.rate
            self.pos += n
            x = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
            return np.repeat(x[:, None], self.channels, 1).tobytes()

        def stop_stream(self):
            pass

        def close(self):
            self.closed = True

    class PyAudio:
        opened: list = []
        terminated = 0

        def get_device_count(self):
            return 2

        def get_device_info_by_index(self, i):
            return [{"name": "hdmi", "maxInputChannels": 0}, {"name": "usb mic", "maxInputChannels": 2}][i]

        def open(self, format, channels, rate, input, input_device_index=None, frames_per_buffer=1024):
            assert format == FakePyAudio.paInt16 and input
            s = FakePyAudio._Stream(rate, channels, frames_per_buffer)
            FakePyAudio.PyAudio.opened.append(s)
            return s

        def terminate(self):
            FakePyAudio.PyAudio.terminated += 1


def test_microphone_source_with_fake_pyaudio():
    from parla.edge.sources import MicSource, list_input_devices
    from parla.errors import ParlaError

    assert list_input_devices(FakePyAudio) == [(1, "usb mic", 2)]
    mic = MicSource(48_000, 40, device_index=1, channels=2, pyaudio_module=FakePyAudio)
    chunks = []
    for c in mic:
        chunks.append(c.samples)
        if len(chunks) == 25:
            mic.stop()
    mic.close()
    x = np.concatenate(chunks)
    assert abs(len(x) - SAMPLE_RATE) < 400  # 25 x 40 ms at 16 kHz (resampler delay aside)
    assert 0.15 < np.abs(x[2000:]).max() < 0.35  # the tone's level survives the downmix (mean of channels)
    assert FakePyAudio.PyAudio.opened[-1].closed
    with pytest.raises(ParlaError, match="not an input"):
        MicSource(48_000, 40, device_index=0, channels=1, pyaudio_module=FakePyAudio)


def test_microphone_without_pyaudio_names_the_fix(monkeypatch):
    import builtins

    from parla.edge.sources import MicSource
    from parla.errors import ParlaError

    real = builtins.__import__

    def no_pyaudio(name, *a, **k):
        if name == "pyaudio":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyaudio)
    with pytest.raises(ParlaError, match=r"parla\[audio\]"):
        MicSource()


def test_stdin_source_pcm_then_idle_silence():
    from parla.edge.sources import StdinSource

    r, w = os.pipe()
    src = StdinSource(16_000, 40, stream=open(r, "rb", buffering=0), idle_after_s=0.1)
    tone = (0.5 * np.sin(np.arange(6400) / 5) * 32767).astype("<i2").tobytes()
    os.write(w, tone)
    got = []
    for c in src:
        got.append(c.samples)
        if len(got) == 14:  # 10 chunks of the tone (6400 samples), then silence while nothing comes
            os.close(w)
            break
    loud = [np.abs(g).max() for g in got]
    assert max(loud[:9]) > 0.3 and max(loud[11:]) == 0.0


def test_camera_waits_for_a_face(face_path):
    from parla.edge.camera import capture_portrait
    from parla.edge.config import CameraConfig
    from parla.errors import NoFaceFoundError
    from parla.media.image import load_image

    photo = load_image(face_path)

    class FakeCamera:
        def __init__(self, frames):
            self.frames, self.closed = list(frames), False

        def grab(self):
            f = self.frames.pop(0) if self.frames else np.zeros_like(photo)
            return f, f  # (full, lores): the same picture here

        def close(self):
            self.closed = True

    cam = FakeCamera([np.zeros_like(photo), np.zeros_like(photo), photo])
    # A long deadline: the real detector on two empty frames can take seconds on a loaded 2-core machine, and the
    # call returns as soon as the face is found.
    got = capture_portrait(CameraConfig(timeout_s=300), camera=cam)
    assert got is photo and cam.closed
    cam = FakeCamera([])
    with pytest.raises(NoFaceFoundError, match="no usable face within 0.5 s"):
        capture_portrait(CameraConfig(timeout_s=0.5), camera=cam)
    assert cam.closed


def test_unavailable_devices_and_precisions_give_documented_errors():
    from parla.edge.backends import open_models
    from parla.edge.backends.torch_backend import TorchBackend
    from parla.edge.config import load_config
    from parla.errors import ModelNotFoundError, ParlaError

    cfg = load_config("x86-cpu", {"precision": "fp32"})
    with pytest.raises(ModelNotFoundError, match="parla export default --format openvino --precision fp32"):
        open_models(cfg)
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(ParlaError, match="no CUDA GPU"):
            TorchBackend(cfg.model, "cuda")
        ref = load_config("nvidia-gpu-reference", {"fallback_to_cpu": False})
        with pytest.raises(ParlaError, match="no CUDA GPU"):
            open_models(ref)
        refiner, motion = open_models(load_config("nvidia-gpu-reference", {"fallback_to_cpu": True}))
        assert refiner.device == "cpu" and refiner.run(np.zeros(refiner.input_shape, np.float32)).shape[1] == 4


def test_bench_report_keys_and_merge(tmp_path):
    from parla.cli import main

    out = tmp_path / "b"
    assert main(["bench", "--backends", "onnxruntime", "--seconds", "2", "--frames", "20", "-o", str(out), "-q"]) == 0
    rep = json.loads((out / "bench.json").read_text())
    r = rep["results"][0]
    for k in (
        "backend",
        "precision",
        "device",
        "fps",
        "latency_ms",
        "stages",
        "audio_to_frame_ms",
        "peak_rss_mb",
        "model_mb",
        "psnr_vs_fp32",
    ):
        assert k in r
    assert set(r["latency_ms"]) == {"p50", "p95", "p99"}
    assert {"warp", "refiner", "paste_back", "motion", "audio_features"} <= set(r["stages"])
    assert r["fps"] > 0 and r["model_mb"] > 0 and r["psnr_vs_fp32"] > 35
    assert rep["estimates"] and all(e["estimate"] for e in rep["estimates"])
    assert "Estimates, not measurements" in (out / "bench.md").read_text()
    assert main(["bench", "--merge", str(out / "bench.json"), str(out / "bench.json"), "-o", str(tmp_path / "m")]) == 0
    md = (tmp_path / "m" / "bench.md").read_text()
    assert md.count("| onnxruntime | int8 |") == 2
    assert rep["settings"]["model"] == "default"


def test_bench_takes_a_candidate_model_folder(tmp_path):
    """``--model``: a copy of the bundled folder is benched in its place (the report says which)."""
    import shutil

    from parla.cli import main
    from parla.modelfolder import bundled_path

    folder = tmp_path / "candidate"
    shutil.copytree(bundled_path(), folder)
    out = tmp_path / "b"
    argv = ["bench", "--backends", "onnxruntime", "--seconds", "1", "--frames", "10", "--model", str(folder)]
    assert main([*argv, "-o", str(out), "-q"]) == 0
    rep = json.loads((out / "bench.json").read_text())
    assert rep["settings"]["model"] == str(folder) and rep["results"][0]["fps"] > 0
    (folder / "edge" / "refiner_int8.onnx").write_bytes(b"tampered")  # the candidate's files are checked too
    assert main([*argv, "-o", str(tmp_path / "c"), "-q"]) == 1


def test_compositor_moves_the_photo_and_paints_only_inside_its_footprint(avatar):
    """A shifted warp moves the photo's own pixels; the change lands in the feathered footprint only."""
    from parla.face.align import feather_mask, footprint
    from parla.face.composite import NativeCompositor

    p = avatar.portrait
    (x0, y0, x1, y1), inv, size = footprint(p.image.shape, p.alignment)
    comp = NativeCompositor(p.image, p.alignment)
    gx, gy = np.meshgrid(np.arange(256, dtype=np.float32), np.arange(256, dtype=np.float32))
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    change = np.repeat((40 * np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy))[..., None], 3, axis=2)  # smooth
    got = comp(gx, gy, change)
    outside = np.ones(p.image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(got[outside], p.image[outside])
    import cv2

    up = cv2.resize(change.astype(np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
    patch = cv2.warpAffine(up, inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(feather_mask(p.alignment.size), inv, size, flags=cv2.INTER_LINEAR)[..., None]
    bg = p.image[y0:y1, x0:x1].astype(np.float32)
    want = np.clip(bg + alpha * patch + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(got[y0:y1, x0:x1].astype(int) - want).mean() < 1.0
    # a warp that samples 2 crop px to the right shows the photo moved left by 2 / scale photo px
    moved = comp(gx + 2, gy, None)
    c = p.alignment.to_image(np.array([[128.0, 128.0]]))[0].astype(int)
    s = p.alignment.scale
    ref = p.image[c[1] - 10 : c[1] + 10, c[0] - 10 + round(2 / s) : c[0] + 10 + round(2 / s)].astype(int)
    assert np.abs(moved[c[1] - 10 : c[1] + 10, c[0] - 10 : c[0] + 10].astype(int) - ref).mean() < 6


def test_text_lines_are_read_in_bounded_memory_and_a_bad_line_is_skipped(caplog):
    """--text-stdin: an endless line is skipped piece by piece (never gathered whole), a line that is not UTF-8 is
    skipped, and the lines around them still come."""
    import io

    from parla.edge.sources import text_lines

    class Counting(io.BytesIO):
        largest = 0

        def readline(self, size=-1):
            assert size > 0  # every read is bounded
            line = super().readline(size)
            Counting.largest = max(Counting.largest, len(line))
            return line

    data = b"hello there\n" + b"x" * 200_000 + b"\n" + b"caf\xe9 bad\n" + "d\u00e9j\u00e0 vu\n".encode() + b"end"
    lines = list(text_lines(Counting(data), max_chars=100))
    assert lines == ["hello there\n", "d\u00e9j\u00e0 vu\n", "end"]
    assert Counting.largest <= 4 * 100 + 2
    assert "longer than 100 characters" in caplog.text and "not UTF-8" in caplog.text
