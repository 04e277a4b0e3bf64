"""The live conversation API on Avatar (parla.edge.live), without Pipecat: speech pushed at any rate, frames with
the exact audio that plays with them, idle between replies, interruption, and hostile use (storms, bad audio, a
consumer that stops reading)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from parla.errors import AudioFormatError

FPS = 25
RATE = 24_000


@pytest.fixture(scope="module")
def avatar(face_path):
    from parla.edge import Avatar

    with Avatar.from_image(face_path, "x86-cpu") as a:
        yield a


@pytest.fixture(scope="module")
def reply(speech) -> np.ndarray:
    """3 s of the test speech at 24 kHz, int16 (as a TTS sends it)."""
    from parla.audio.io import Resampler

    x = Resampler(16_000, rate=RATE).push(speech[16_000:64_000])
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def chunks(x: np.ndarray, n: int = 960):
    return [x[i : i + n] for i in range(0, len(x), n)]


def run_frames(session, n: int) -> list:
    return [session.next_frame() for _ in range(n)]


def test_reply_audio_is_sample_exact_and_the_lips_start_with_it(avatar, reply):
    s = avatar.live(sample_rate=RATE, paced=False)
    idle = run_frames(s, 8)
    for c in chunks(reply):
        s.push_audio(c, RATE)
    s.flush()
    frames = idle + run_frames(s, len(reply) // 960 + 20)
    speaking = [f.index for f in frames if f.speaking]
    assert speaking[0] == 8  # the first frame made after the audio came
    assert speaking == list(range(8, 8 + len(speaking)))  # one reply, no gap
    out = np.concatenate([f.audio for f in frames if f.speaking])
    assert len(out) == -(-len(reply) // 960) * 960  # whole frames, the last padded with silence
    np.testing.assert_array_equal(out[: len(reply)], reply.astype(np.float32) / 32768)
    assert not out[len(reply) :].any()
    assert all(len(f.audio) == RATE // FPS and f.pts == f.index / FPS for f in frames)
    assert not any(f.audio.any() for f in frames if not f.speaking)  # idle frames carry silence
    assert s.stats.underruns == 0 and s.stats.dropped == 0 and s.stats.utterances == 1
    s.close()


def test_idle_between_replies_and_interruption_within_two_frames(avatar, reply):
    s = avatar.live(sample_rate=RATE, paced=False)
    for c in chunks(reply):
        s.push_audio(c, RATE)
    s.flush()
    first = run_frames(s, 30)  # 1.2 s of the 3-s reply
    s.interrupt()
    after = run_frames(s, 40)
    assert sum(f.speaking for f in first) == 30
    assert sum(f.speaking for f in after) == 0  # none of the reply's audio after the interruption
    assert not any(f.audio.any() for f in after)
    assert s.pending_s == 0 and s.idle
    # the lips go to rest at once (the ramp of a pause: 4 frames) and stay there; the reply's lips were moving
    assert all(f.motion.mouth_rest == 0 for f in first[5:])
    assert [f.motion.mouth_rest for f in after[:4]] == [0.25, 0.5, 0.75, 1.0]
    assert all(f.motion.mouth_rest == 1 for f in after[4:])
    # a second reply after the interruption plays whole
    for c in chunks(reply[:24_000]):
        s.push_audio(c, RATE)
    s.flush()
    second = run_frames(s, 40)
    out = np.concatenate([f.audio for f in second if f.speaking])
    np.testing.assert_array_equal(out[:24_000], reply[:24_000].astype(np.float32) / 32768)
    assert s.stats.interrupts == 1 and s.stats.utterances == 2
    s.close()


@pytest.mark.parametrize("rate", [8_000, 11_025, 16_000, 44_100, 48_000])
def test_any_input_rate_keeps_the_reply_length(avatar, speech, rate):
    from parla.audio.io import Resampler

    x = Resampler(16_000, rate=rate).push(speech[:32_000])  # 2 s
    s = avatar.live(sample_rate=RATE, paced=False)
    s.push_audio(x.astype(np.float32), rate)
    s.flush()
    frames = run_frames(s, 70)
    assert abs(sum(f.speaking for f in frames) - 50) <= 1  # 2 s at 25 fps
    s.close()


def test_bad_audio_is_a_one_line_error_and_empty_audio_is_nothing(avatar):
    s = avatar.live(sample_rate=RATE, paced=False)
    for bad, rate in [
        (np.full(100, np.nan, np.float32), RATE),
        (np.zeros(100, np.int32), RATE),
        (np.zeros((2, 3, 4), np.float32), RATE),
        (np.zeros(100, np.float32), 0),
        (np.zeros(100, np.float32), 22_050.5),
        (np.zeros(100, np.float32), 10**7),
    ]:
        with pytest.raises(AudioFormatError) as e:
            s.push_audio(bad, rate)
        assert "\n" not in str(e.value)
    s.push_audio(np.zeros(0, np.int16), RATE)
    s.push_audio(b"", RATE)
    assert s.idle and not any(f.speaking for f in run_frames(s, 5))
    s.close()


def test_interruption_before_any_speech_and_stereo_bytes(avatar):
    s = avatar.live(sample_rate=16_000, paced=False)
    s.interrupt()
    s.interrupt()
    assert not any(f.speaking for f in run_frames(s, 5))
    tone = (np.sin(np.arange(16_000) / 16_000 * 2 * np.pi * 220) * 8000).astype(np.int16)
    s.push_audio(np.stack([tone, tone], 1), 16_000)  # (n, 2): downmixed
    s.push_audio(tone.tobytes(), 16_000)  # raw PCM bytes
    s.flush()
    assert sum(f.speaking for f in run_frames(s, 80)) == 50
    s.close()


def test_a_storm_of_audio_is_capped_and_counted(avatar):
    s = avatar.live(sample_rate=16_000, paced=False, max_pending_s=5.0)
    second = np.zeros(16_000, np.float32) + 0.01
    for _ in range(60):  # a minute of audio at once
        s.push_audio(second, 16_000)
    assert s.pending_s == pytest.approx(5.0)
    assert s.stats.dropped_audio_s == pytest.approx(55.0)
    s.close()


def test_paced_frames_keep_the_clock_and_a_stalled_consumer_skips(avatar, monkeypatch):
    """On a fake clock (the frame pacing is the clock's, whatever this machine's speed): one frame per 1/fps, and a
    consumer that stops reading for 2 s finds the frames it missed skipped and counted, not queued."""
    now = [0.0]
    s = avatar.live(sample_rate=RATE, paced=True, clock=lambda: now[0], max_lag_frames=4)

    async def sleep(dt):
        now[0] += dt

    async def consume():
        got = []
        async for f in s.frames():
            got.append(f)
            if len(got) == 10:
                now[0] += 2.0  # the consumer stalls
            if len(got) == 30:
                break
        return got

    monkeypatch.setattr(asyncio, "sleep", sleep)
    got = asyncio.run(consume())
    idx = [f.index for f in got]
    assert idx[:10] == list(range(10))
    assert idx[10] - idx[9] >= 2.0 * FPS - 5  # the missed frames were skipped
    assert s.stats.dropped == idx[10] - 10
    assert np.diff(idx[10:]).tolist() == [1] * 19
    s.close()
