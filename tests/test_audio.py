from __future__ import annotations

import numpy as np
import pytest

from parla.audio import SAMPLE_RATE, Resampler, iter_audio, load_audio, resample
from parla.audio.mel import HOP, N_MELS, StreamingLogMel, log_mel
from parla.errors import AudioFormatError, EmptyAudioError, SilentAudioError

# (suffix, container format, codec)
FORMATS = [
    (".wav", "wav", "pcm_s16le"),
    (".flac", "flac", "flac"),
    (".mp3", "mp3", "libmp3lame"),
    (".m4a", "mp4", "aac"),
    (".ogg", "ogg", "libopus"),
]


def encode(path, audio: np.ndarray, rate: int, fmt: str, codec: str, channels: int = 1) -> None:
    """Write a test file with PyAV (FFmpeg) in any format and rate."""
    import av

    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = layout
        planar = np.ascontiguousarray(np.tile(audio[None], (channels, 1)).astype(np.float32))
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = rate
        c.mux(s.encode(frame))
        c.mux(s.encode(None))


def best_alignment(a: np.ndarray, b: np.ndarray, max_lag: int = 2000) -> float:
    """Highest normalised correlation of a and b over lags up to max_lag (codecs add priming delay)."""
    n = min(len(a), len(b))
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.concatenate([xc[:max_lag], xc[-max_lag:]])
    return float(lags.max() / np.sqrt(np.dot(a, a) * np.dot(b, b)))


@pytest.mark.parametrize("suffix,fmt,codec", FORMATS)
def test_every_format_loads_as_16k_mono(tmp_path, speech, suffix, fmt, codec):
    rate = 44_100 if codec != "libopus" else 48_000
    path = tmp_path / f"speech{suffix}"
    encode(path, resample_to(speech, rate), rate, fmt, codec, channels=2)
    got = load_audio(path)
    assert got.dtype == np.float32 and got.ndim == 1
    assert abs(len(got) - len(speech)) < 0.08 * SAMPLE_RATE  # codec padding only
    assert best_alignment(speech, got) > 0.9


def resample_to(x: np.ndarray, rate: int) -> np.ndarray:
    t_src = np.arange(len(x)) / SAMPLE_RATE
    t_dst = np.arange(int(len(x) * rate / SAMPLE_RATE)) / rate
    return np.interp(t_dst, t_src, x).astype(np.float32)


def test_audio_track_of_mp4(tmp_path, speech):
    from parla.media.video import VideoWriter

    path = tmp_path / "clip.mp4"
    with VideoWriter(path, 25, audio=speech) as w:
        for _ in range(int(len(speech) / SAMPLE_RATE * 25)):
            w.write(np.zeros((64, 64, 3), np.uint8))
    got = load_audio(path)
    assert abs(len(got) - len(speech)) < 0.05 * SAMPLE_RATE
    assert best_alignment(speech, got) > 0.9


def test_resampling_keeps_pitch_and_length():
    rate = 48_000
    t = np.arange(rate * 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    out = resample(stereo, rate, channels=2)
    assert abs(len(out) - 2 * SAMPLE_RATE) <= 64
    spectrum = np.abs(np.fft.rfft(out[1000:-1000]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(out[1000:-1000])
    assert abs(peak_hz - 1000) < 5
    assert abs(np.sqrt(np.mean(out[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.02  # downmix keeps the level


def test_chunked_resampler_matches_whole(speech):
    x = resample_to(speech, 22_050)
    whole = resample(x, 22_050)
    rs = Resampler(22_050)
    parts = [rs.push(x[i : i + 1234]) for i in range(0, len(x), 1234)] + [rs.flush()]
    chunked = np.concatenate(parts)
    n = min(len(whole), len(chunked))
    assert abs(len(whole) - len(chunked)) <= 32
    assert np.max(np.abs(whole[:n] - chunked[:n])) < 1e-3


def test_streaming_reader_is_bounded_and_complete(tmp_path, speech):
    chunks = list(iter_audio(DATA_WAV(tmp_path, speech), chunk_samples=4000))
    assert all(len(c) == 4000 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 4000
    assert np.allclose(np.concatenate(chunks), speech, atol=1e-4)


def DATA_WAV(tmp_path, speech):  # noqa: N802 - reads as a constant path in the test
    path = tmp_path / "s.wav"
    encode(path, speech, SAMPLE_RATE, "wav", "pcm_s16le")
    return path


def test_log_mel_shape_and_content(speech):
    mel = log_mel(speech)
    assert mel.shape == (1 + len(speech) // HOP, N_MELS) and mel.dtype == np.float32
    # 0.5 s of leading silence sits at the floor; speech is far above it.
    assert mel[5:40].max() < -10
    assert np.percentile(mel[60:-60].max(1), 50) > mel[5:40].max() + 8


def test_log_mel_of_a_tone_peaks_in_the_right_band():
    from parla.audio.mel import F_MAX, F_MIN, _hz_to_mel, _mel_to_hz

    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    mel = log_mel((0.3 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32))
    centres = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))[1:-1]
    assert abs(centres[np.argmax(mel[50])] - 1500) < 100


@pytest.mark.parametrize("chunk", [1, 159, 160, 1000, 16000])
def test_streaming_log_mel_is_identical(speech, chunk):
    x = speech[: 16000 + 37]
    s = StreamingLogMel()
    frames = [s.push(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [s.flush()]
    np.testing.assert_allclose(np.concatenate(frames), log_mel(x), rtol=0, atol=1e-5)


def test_silent_empty_and_corrupt_audio(tmp_path):
    silent = tmp_path / "silent.wav"
    encode(silent, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, "wav", "pcm_s16le")
    with pytest.raises(SilentAudioError, match="silent"):
        load_audio(silent)
    assert load_audio(silent, allow_silent=True).shape == (SAMPLE_RATE,)
    empty = tmp_path / "empty.wav"
    encode(empty, np.zeros(10, np.float32), SAMPLE_RATE, "wav", "pcm_s16le")
    with pytest.raises(EmptyAudioError):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 40)
    with pytest.raises(AudioFormatError):
        load_audio(corrupt)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 100)
    with pytest.raises(AudioFormatError):
        load_audio(text)


def test_video_without_audio_track_is_an_audio_error(tmp_path):
    from parla.media.video import VideoWriter

    path = tmp_path / "mute.mp4"
    with VideoWriter(path, 25) as w:
        for _ in range(10):
            w.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(AudioFormatError, match="no audio stream"):
        load_audio(path)
