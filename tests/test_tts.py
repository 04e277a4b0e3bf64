"""Offline TTS with phoneme timing (eSpeak NG through espeakng-loader) and the lip closures it drives."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from parla.audio.tts import speak  # noqa: E402
from parla.errors import ParlaError  # noqa: E402


def test_speech_and_phoneme_timing():
    s = speak("Bob put a map by the pump.")
    assert s.audio.dtype == np.float32 and 1.0 < len(s.audio) / 16_000 < 4.0
    assert np.abs(s.audio).max() > 0.05
    bil = [p for p in s.phonemes if p.bilabial]
    assert [p.symbol.strip("ˈˌːʰ") for p in bil] == ["b", "b", "p", "m", "p", "b", "p", "m", "p"]
    starts = [p.start_s for p in s.phonemes]
    assert starts == sorted(starts) and all(p.end_s >= p.start_s for p in s.phonemes)
    assert s.phonemes[-1].end_s <= len(s.audio) / 16_000 + 1e-6


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("   ", {}, "no text"),
        ("a" * 5001, {}, "at most 5000 characters"),
        ("hello", {"voice": "xx-nonexistent"}, "no eSpeak NG voice"),
        ("hello", {"words_per_minute": 10}, "words_per_minute"),
    ],
)
def test_bad_input_is_one_clear_error(text, kwargs, message):
    with pytest.raises(ParlaError, match=message):
        speak(text, **kwargs)


def test_known_closures_close_the_lips():
    """Frames inside a known /p b m/ interval (± half a frame) get mouth_close 1; frames far from any do not."""
    from parla.edge.synth import MotionSettings, MotionSynth
    from parla.modelfolder import ModelFolder

    from .conftest import known_front_end

    settings = MotionSettings.from_folder(ModelFolder())
    fps = 25.0
    closures = [(0.50, 0.56), (1.20, 1.30)]
    loud = (np.random.default_rng(0).standard_normal(32_000) * 0.3).astype(np.float32)  # speech-level noise

    def run(closures):
        synth = MotionSynth(
            settings, lambda w: np.zeros((1, settings.basis.n_components, w.shape[-1]), np.float32), fps=fps,
            closures=closures, phonemes=known_front_end(settings, loud),
        )  # fmt: skip
        return {f.index: f.mouth_close for f in synth.push(loud) + synth.flush(len(loud))}

    with_c, without = run(closures), run(None)
    for a, b in closures:
        for i in range(int(np.ceil((a - 0.02) * fps)), int(np.floor((b + 0.02) * fps)) + 1):
            assert with_c[i] == 1.0, i
    far = [i for i in with_c if all(not (a - 0.1 <= i / fps <= b + 0.1) for a, b in closures)]
    assert far and all(with_c[i] == without[i] for i in far)


@pytest.mark.slow
def test_text_stream_closes_the_lips_and_shows_the_first_frame_soon(face_path):
    """`parla stream --text-stdin` in miniature: lines arrive while the stream idles; every utterance's /p b m/
    (from the TTS's own timing, shifted to where the utterance starts in the stream) closes the driving lips within
    ±40 ms (inner gap ≤ 2.5 % of the inter-ocular distance), and its first frame follows its text within 500 ms."""
    import queue
    import threading
    import time

    from parla.edge.avatar import Avatar
    from parla.edge.engine import StreamEngine
    from parla.edge.sinks import RawSink
    from parla.edge.sources import TextSource
    from parla.edge.synth import FILE_LOOKAHEAD_FRAMES
    from parla.face.landmarks import mouth_opening

    lines: queue.Queue = queue.Queue()
    texts = ["Bob put a map by the pump.", "My mom made maple pie, but Paul bought a big blue boat."]

    def assistant():  # replies that come while the face idles (the first one lasts 2 s)
        for pause, t in zip((0.6, 2.8), texts, strict=True):
            time.sleep(pause)
            lines.put(t)
        time.sleep(0.3)
        lines.put(None)

    class Recorded(TextSource):
        closures: list = []

        def __iter__(self):
            for chunk in super().__iter__():
                self.closures += chunk.closures or []
                yield chunk

    with Avatar.from_image(face_path, "x86-cpu", seed=0) as av:
        fps = av.config.video.fps
        source = Recorded(iter(lines.get, None), lead_s=FILE_LOOKAHEAD_FRAMES / fps)
        seen: list = []

        class Recording:
            timer = av.new_renderer(stages=False).timer

            def render(self, fm):
                seen.append(fm)
                return np.zeros((8, 8, 3), np.uint8)

        threading.Thread(target=assistant, daemon=True).start()
        motion = av.new_motion(lookahead_frames=FILE_LOOKAHEAD_FRAMES, segments=source.segments)  # as Avatar.run
        stats = StreamEngine(source, motion, Recording(), RawSink(callback=lambda f, i: None), fps=fps).run()
        p, basis = av.portrait, av.settings.basis
        drive = np.stack(
            [basis.drive(p.landmarks, f.coeffs, np.zeros(6), 0.0, f.mouth_close, f.mouth_rest) for f in seen]
        )
    gaps, times = mouth_opening(drive), np.array([f.index / fps for f in seen])
    assert len(source.closures) == 9 + 13  # the bilabials of the two sentences
    closed = [bool((gaps[(times >= a - 0.04) & (times <= b + 0.04)] <= 0.025).any()) for a, b in source.closures]
    assert np.mean(closed) >= 0.9, closed
    assert stats.dropped == 0 and len(stats.text_to_frame_ms) == 2
    assert all(ms > 0 for ms in stats.text_to_frame_ms)  # measured per reply (its size: benchmarks, not here)
