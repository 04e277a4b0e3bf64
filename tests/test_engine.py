"""One frame engine: `parla animate`, `Avatar.render`, `Avatar.stream` and `parla stream` run the same motion
synthesizer and frame renderer, so on the same backend and seed they give the same frames."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from parla.cli import main

torch = pytest.importorskip("torch")

TORCH_STUDENT = {"backend": "torch", "device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory, speech):
    from .test_audio import encode

    path = tmp_path_factory.mktemp("engine") / "clip.wav"
    encode(path, speech[8000 : 8000 + 3 * 16000], 16000, "wav", "pcm_s16le")  # 3 s: 75 frames at 25 fps
    return path


@pytest.fixture(scope="module")
def animated(tmp_path_factory, face_path, clip):
    """`parla animate --net student` (the torch backend), decoded."""
    from parla.media.video import iter_frames

    out = tmp_path_factory.mktemp("engine") / "animate.mp4"
    assert (
        main(
            [
                "animate",
                str(face_path),
                str(clip),
                "-o",
                str(out),
                "--backend",
                "torch",
                "--net",
                "student",
                "--seed",
                "5",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    return [f for _, f in iter_frames(out)]


def test_animate_and_avatar_render_write_identical_frames(tmp_path, face_path, clip, animated):
    from parla.edge.avatar import Avatar
    from parla.media.video import iter_frames

    out = tmp_path / "render.mp4"
    with Avatar.from_image(face_path, "x86-cpu", overrides=TORCH_STUDENT, seed=5) as av:
        av.render(clip, out)
    rendered = [f for _, f in iter_frames(out)]
    assert len(rendered) == len(animated) == 75
    assert all(np.array_equal(a, b) for a, b in zip(animated, rendered, strict=True))


def test_threaded_stream_delivers_the_offline_frames(face_path, clip):
    """The real-time engine (audio thread, bounded queue, render thread) on the torch backend gives exactly the
    frames of ``Avatar.stream`` for every frame it did not drop."""
    from parla.audio import load_audio
    from parla.edge.avatar import Avatar
    from parla.edge.sinks import RawSink
    from parla.edge.sources import ArraySource

    audio = load_audio(clip)
    got: dict[int, np.ndarray] = {}
    with Avatar.from_image(face_path, "x86-cpu", overrides=TORCH_STUDENT, seed=5) as av:
        chunk = 16_000 * av.config.audio.chunk_ms // 1000
        chunks = (audio[i : i + chunk] for i in range(0, len(audio), chunk))
        offline = list(av.stream(chunks, lookahead_frames=2, known_audio=audio))  # the run's source is ahead too
        stats = av.run(
            ArraySource(audio, av.config.audio.chunk_ms, speed=0.5, lead_s=2 / av.config.video.fps),
            RawSink(callback=lambda f, i: got.__setitem__(i, f)),
        )
    assert len(offline) == 75
    assert stats.frames == len(got) and stats.frames + stats.dropped == 75
    assert got  # how many are dropped depends on the machine's load; what is delivered may not
    assert all(np.array_equal(offline[i], f) for i, f in got.items())


def test_a_file_pushed_in_net_steps_gives_the_40ms_motion(face_path, clip):
    """Avatar.render pushes a file ``known_chunk_samples`` at a time (one lips-net run per push instead of one per
    40-ms chunk): the same motion as 40-ms chunks, to float rounding (the net reads each frame at another place
    of its window)."""
    from parla.audio import load_audio
    from parla.edge.avatar import Avatar

    audio = load_audio(clip)
    with Avatar.from_image(face_path, "x86-cpu", overrides=TORCH_STUDENT, seed=5) as av:
        step = av.settings.known_chunk_samples
        assert step == av.settings.mel_step * 160 and step > 16_000 * av.config.audio.chunk_ms // 1000
        runs = []
        for size in (step, 16_000 * av.config.audio.chunk_ms // 1000):
            m = av.new_motion(lookahead_frames=2, known_audio=audio)
            runs.append([f for i in range(0, len(audio), size) for f in m.push(audio[i : i + size])])
            runs[-1] += m.flush(len(audio))
    a, b = runs
    assert [f.index for f in a] == [f.index for f in b] == list(range(75))
    for x, y in zip(a, b, strict=True):
        assert np.allclose(x.z, y.z, atol=1e-3) and np.allclose(x.coeffs, y.coeffs, atol=0.05)
        assert (x.mouth_close, x.mouth_rest, x.blink, x.voiced) == (y.mouth_close, y.mouth_rest, y.blink, y.voiced)
        assert np.array_equal(x.pose, y.pose)


def test_parla_stream_file_sink_matches_animate(tmp_path, face_path, clip, animated):
    """`parla stream --sink file:` on the torch backend gives the frames of the offline engine, frame for frame
    where no frame was dropped. The file sink encodes with x264 ultrafast (2 grey levels from animate's
    encoding on this portrait), so the reference is the offline engine's frames through the same sink."""
    from parla.audio import load_audio
    from parla.edge.avatar import Avatar
    from parla.edge.sinks import FileSink
    from parla.edge.synth import FILE_LOOKAHEAD_FRAMES
    from parla.media.video import iter_frames

    out, stats, ref = tmp_path / "stream.mp4", tmp_path / "stats.json", tmp_path / "ref.mp4"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "parla",
            "stream",
            str(face_path),
            "--audio",
            str(clip),
            "--backend",
            "torch",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--speed",
            "0.5",
            "--seed",
            "5",
            "--sink",
            f"file:{out}",
            "--stats",
            str(stats),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    audio = load_audio(clip)
    with Avatar.from_image(face_path, "x86-cpu", overrides=TORCH_STUDENT, seed=5) as av:
        chunk = 16_000 * av.config.audio.chunk_ms // 1000
        offline = list(
            av.stream(
                (audio[i : i + chunk] for i in range(0, len(audio), chunk)),
                lookahead_frames=FILE_LOOKAHEAD_FRAMES,
                known_audio=audio,  # a file: its phoneme features at once, as `parla stream --audio` has them
            )
        )
        sink = FileSink(ref, 25.0, metadata=av.metadata)
        sink.audio(audio)
        for i, f in enumerate(offline):
            sink.write(f, i)
        sink.close(ok=True)
    # the same engine offline: animate's frames are these frames (its own encoder)
    assert len(offline) == len(animated) == 75
    assert max(float(np.abs(a.astype(int) - b).mean()) for a, b in zip(animated, offline, strict=True)) < 3
    streamed, want = ([f for _, f in iter_frames(x)] for x in (out, ref))
    assert len(streamed) == len(want) == 75
    dropped = json.loads(stats.read_text())["dropped"]
    if dropped == 0:
        differ = [i for i, (a, b) in enumerate(zip(want, streamed, strict=True)) if not np.array_equal(a, b)]
        assert not differ, differ
    else:  # a dropped slot holds the previous picture, and the encoder's references differ after it
        diff = [float(np.abs(a.astype(int) - b).mean()) for a, b in zip(want, streamed, strict=True)]
        assert sum(d > 1.0 for d in diff) <= 2 * dropped, (dropped, sorted(diff)[-5:])


def test_animate_teacher_is_the_engine_on_the_teacher(tmp_path, face_path, clip):
    """`parla animate` (default: the teacher) equals Avatar.render with net=teacher: one renderer, two nets."""
    from parla.edge.avatar import Avatar
    from parla.media.video import iter_frames

    short = tmp_path / "short.wav"
    from parla.audio import load_audio

    from .test_audio import encode

    encode(short, load_audio(clip)[:16000], 16000, "wav", "pcm_s16le")
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert (
        main(["animate", str(face_path), str(short), "-o", str(a), "--backend", "torch", "--device", "cpu", "-q"]) == 0
    )
    with Avatar.from_image(face_path, "x86-cpu", overrides=TORCH_STUDENT, net="teacher") as av:
        assert av.version == json.loads((av.lips.path / "config.json").read_text())["version"]
        av.render(short, b)
    fa, fb = ([f for _, f in iter_frames(p)] for p in (a, b))
    assert len(fa) == len(fb) == 25 and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_the_end_of_input_drops_no_frame():
    """A model with look-ahead gives its last frames in one burst at the end of the input (a phoneme net's 0.3 s
    is 10 frames at 30 fps), more than the queue holds; no newer audio will come, so none of them is dropped."""
    import time
    from types import SimpleNamespace

    from parla.edge.engine import StreamEngine
    from parla.edge.render import StageTimer
    from parla.edge.sources import ArraySource

    class Motion:
        timer = None

        def push(self, chunk):
            return []

        def flush(self, n_samples):
            return [SimpleNamespace(index=i) for i in range(20)]

    class Renderer:
        timer = StageTimer()

        def render(self, fm):
            time.sleep(0.005)
            return fm.index

    written = []
    sink = SimpleNamespace(audio=lambda s: None, write=lambda f, i: written.append(i), close=lambda ok: None)
    source = ArraySource(np.zeros(1280, np.float32), 40, speed=0)
    stats = StreamEngine(source, Motion(), Renderer(), sink, fps=25.0, queue_frames=4).run()
    assert stats.dropped == 0 and written == list(range(20))


def test_a_built_avatar_holds_no_face_models(face_path):
    """The landmark model is 70 MB resident; once the portrait is built a running avatar never uses it."""
    from parla.edge.avatar import Avatar
    from parla.face import detect

    detect._models()
    with Avatar.from_image(face_path, "x86-cpu", overrides=TORCH_STUDENT):
        assert detect._models.cache_info().currsize == 0
