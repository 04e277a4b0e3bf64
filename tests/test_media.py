from __future__ import annotations

import numpy as np
import pytest

from parla.audio import SAMPLE_RATE
from parla.errors import OutputPathError, VideoFormatError
from parla.media.image import load_image, save_image
from parla.media.video import VideoWriter, iter_frames, probe_video, stream_durations


def frames(n: int, h: int = 72, w: int = 96):
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : (i * 7) % w] = (200, 80, 40)
        yield img


@pytest.mark.parametrize("fps,seconds", [(25, 2.0), (30000 / 1001, 3.3), (30, 0.5)])
def test_mp4_durations_match_within_one_frame(tmp_path, speech, fps, seconds):
    audio = speech[: int(seconds * SAMPLE_RATE)]
    path = tmp_path / "out.mp4"
    n = int(round(seconds * fps))
    with VideoWriter(path, fps, audio=audio) as w:
        for f in frames(n):
            w.write(f)
    d = stream_durations(path)
    assert abs(d["video"] - n / fps) < 1e-6
    assert abs(d["audio"] - d["video"]) <= 1 / fps
    info = probe_video(path)
    assert (info.width, info.height, info.has_audio) == (96, 72, True)
    assert abs(info.fps - fps) < 0.01


def test_audio_pushed_in_chunks_and_short_audio_is_padded(tmp_path, speech):
    path = tmp_path / "chunks.mp4"
    with VideoWriter(path, 25) as w:
        for i, f in enumerate(frames(50)):
            if i < 30:  # 1.2 s of audio for 2 s of video: the rest must be padded with silence
                w.write_audio(speech[i * 640 : (i + 1) * 640])
            w.write(f)
    d = stream_durations(path)
    assert abs(d["audio"] - d["video"]) <= 1 / 25


def test_reader_gives_increasing_timestamps_and_rgb(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, 25) as w:
        for f in frames(20, 63, 81):  # odd sizes are padded to even for yuv420p
            w.write(f)
    got = list(iter_frames(path))
    assert len(got) == 20
    times = [t for t, _ in got]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert abs(times[1] - times[0] - 0.04) < 1e-6
    assert got[0][1].shape == (64, 82, 3) and got[0][1].dtype == np.uint8
    # H.264 at CRF 18 keeps the colours: the stripe of the last frame is orange.
    r, g, b = got[-1][1][30, 5].astype(int)
    assert r > 150 and g < 130 and b < 90


def test_failure_leaves_no_output(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, 25) as w:
        w.write(np.zeros((32, 32, 3), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 25).__enter__()


def test_not_a_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoFormatError):
        list(iter_frames(bad))


def test_image_round_trip_and_odd_inputs(tmp_path, face_path):
    import cv2

    img = load_image(face_path)
    out = save_image(tmp_path / "a.png", img)
    assert np.array_equal(load_image(out), img)
    rgba = np.dstack([img[:, :, ::-1], np.full(img.shape[:2], 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert load_image(tmp_path / "rgba.png").shape == img.shape
    cv2.imwrite(str(tmp_path / "grey.png"), img[:, :, 0])
    assert load_image(tmp_path / "grey.png").shape == img.shape
