"""The invisible watermark: payload coding, embedding cost, detection after real re-encodes (PyAV / libx264),
no detection on unmarked media, and the error paths of `parla verify`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parla.cli import main
from parla.watermark import Payload, Watermarker, make_payload, verify
from parla.watermark.core import Accumulator, Embedder, bits_payload, payload_bits


@pytest.fixture(scope="module")
def portrait(face_path):
    from parla.media.image import load_image

    return load_image(face_path)


def _clip(image: np.ndarray, n: int, size: int) -> list[np.ndarray]:
    """A talking-head-like clip: the photo drifting by a few pixels (stands in for head motion)."""
    import cv2

    base = cv2.resize(image, (size + 8, size + 8))
    return [
        np.ascontiguousarray(
            base[
                4 + int(3 * np.sin(t / 5)) : 4 + int(3 * np.sin(t / 5)) + size,
                4 + int(2 * np.cos(t / 7)) : 4 + int(2 * np.cos(t / 7)) + size,
            ]
        )
        for t in range(n)
    ]


def _write(frames, path, crf=18, scale=1.0):
    import cv2

    from parla.media.video import VideoWriter

    with VideoWriter(path, 25, crf=crf, preset="medium") as w:
        for f in frames:
            w.write(f if scale == 1.0 else cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return path


def test_payload_roundtrip_and_crc():
    p = make_payload("teacher-step2000", install=0xABC)
    bits = payload_bits(p)
    assert len(bits) == 40 and bits_payload(bits) == p
    bad = bits.copy()
    bad[5] *= -1
    assert bits_payload(bad) is None  # one flipped bit fails the CRC-16
    info = Payload.parse(p)
    assert info.generator == "Parla" and info.install_id == 0xABC


def test_invisible_and_cheap(portrait):
    import cv2

    from parla.export.parity import psnr

    frame = cv2.resize(portrait, (1280, 720))
    marked = Embedder(0x5ABCDE)(frame, 0)
    assert psnr(marked, frame) >= 40.0
    assert np.abs(marked.astype(int) - frame).max() <= 4
    small = cv2.resize(portrait, (256, 256))  # small frames get a stronger mark, still >= 40 dB
    assert 40.0 <= psnr(Embedder(0x5ABCDE)(small, 9), small) < psnr(marked, frame)


def test_single_frame_detected(portrait):
    import cv2

    frame = cv2.resize(portrait, (1280, 720))
    a = Accumulator()
    a.add(Embedder(0x5ABCDE)(frame, 0))
    r = a.result()
    assert r.found and r.payload == 0x5ABCDE
    clean = Accumulator()
    clean.add(frame)
    assert not clean.result().found


@pytest.mark.parametrize("crf,scale", [(28, 1.0), (23, 0.5), (28, 0.5)])
def test_survives_reencode_and_downscale(tmp_path, portrait, crf, scale):
    wm = Watermarker("test-model", install=0x123)
    frames = [wm(f, i) for i, f in enumerate(_clip(portrait, 50, 320))]
    video = _write(frames, tmp_path / "gen.mp4", crf=crf, scale=scale)
    r = verify(video)
    assert r.found, r
    assert r.payload["raw"] == wm.tag


def test_unmarked_video_not_found_and_cli_exit_codes(tmp_path, portrait, capsys):
    video = _write(_clip(portrait, 40, 320), tmp_path / "real.mp4")
    assert main(["verify", str(video), "--json", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["watermark"]["found"] is False and report["ai_generated"] is False
    marked = _write(
        [Watermarker("m", install=1)(f, i) for i, f in enumerate(_clip(portrait, 40, 320))], tmp_path / "gen.mp4"
    )
    assert main(["verify", str(marked)]) == 0
    assert "FOUND" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing.mp4")]) == 2
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    assert main(["verify", str(tmp_path / "junk.mp4")]) == 2


def test_provenance_tags_and_watermark_off(tmp_path, face_path, speech_path, caplog):
    pytest.importorskip("torch")
    import av

    from parla.edge.avatar import animate

    out = animate(face_path, speech_path, tmp_path / "a.mp4", show=False)
    with av.open(str(out)) as c:
        tags = dict(c.metadata)
    assert tags["parla_generator"] == "Parla" and tags["parla_watermark"] == verify(out).payload["raw"]
    off = animate(face_path, speech_path, tmp_path / "b.mp4", watermark=False, badge=True, show=False)
    assert "watermark is OFF" in caplog.text
    with av.open(str(off)) as c:
        assert dict(c.metadata)["parla_watermark"] == "off"
    assert not verify(off).found


@pytest.mark.parametrize("factor", [0.9, 0.62])
def test_the_scale_is_read_from_the_tile_lattice(portrait, factor):
    """A marked frame resized by a factor no fixed scale list holds: the lattice's period gives the scale back
    (to 1 %), and an unmarked frame shows no such peak at that scale."""
    import cv2

    from parla.watermark.core import lattice_scales

    frame = cv2.resize(portrait, (1280, 720))
    marked = cv2.resize(Embedder(0x5ABCDE)(frame, 0), None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    luma = marked.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert lattice_scales(luma)[0] == pytest.approx(1 / factor, rel=0.01)
    plain = cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA).astype(np.float32)
    assert all(abs(s * factor - 1) > 0.01 for s in lattice_scales(plain @ np.array([0.299, 0.587, 0.114], np.float32)))


def test_screen_capture_copy_is_found(tmp_path, portrait):
    """0.9x, blur and noise (what a screen capture does) on a 640² clip: found, at the scale that undoes it."""
    import cv2

    wm = Watermarker("test-model", install=0x321)
    rng = np.random.default_rng(0)
    frames = [wm(f, i) for i, f in enumerate(_clip(cv2.resize(portrait, (720, 720)), 40, 640))]
    shot = [cv2.GaussianBlur(cv2.resize(f, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_LINEAR), (0, 0), 0.8)
            for f in frames]  # fmt: skip
    noisy = [np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8) for f in shot]
    r = verify(_write(noisy, tmp_path / "screen.mp4", crf=23))
    assert r.found and r.payload["raw"] == wm.tag and r.scale == pytest.approx(1 / 0.9, rel=0.02)


def test_a_real_video_reads_as_unmarked():
    """A real talking video (no mark): not found, a probability of a mark near 0, its sync inside the range of
    the real videos the threshold was calibrated on, and at most 100 frames read."""
    from parla.watermark.core import threshold

    from .conftest import shared

    r = verify(shared("eval", "videos", "v01_sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"))
    assert not r.found and r.frames <= 100 and r.confidence < 0.5
    assert r.z_video < threshold("video") and r.z_image < threshold("image")


def test_chase_decoding_repairs_two_weak_bits_of_a_known_generator():
    """Two of the 40 bits read wrong but weak: plain decoding fails the CRC, Chase decoding (video statistic only)
    recovers the payload; the same damage to a word of an unknown generator is not 'repaired' into a detection."""
    from parla.watermark.core import LAYOUT, _cells_to_tile, read_bits

    def tile(payload: int, wrong: tuple[int, ...]) -> np.ndarray:
        v = np.zeros(256)
        v[LAYOUT.sync] = LAYOUT.sync_sign
        bits = payload_bits(payload)
        strength = np.ones(len(bits))
        strength[list(wrong)] = -0.2  # read with the wrong sign, weakly
        v[LAYOUT.data] = LAYOUT.data_sign * (bits * strength)[:, None]
        return _cells_to_tile(v)

    ours = make_payload("test-model", install=0x0F0)
    assert read_bits(tile(ours, ()), 0, 0)[0] == ours
    assert read_bits(tile(ours, (3, 17)), 0, 0)[0] is None
    assert read_bits(tile(ours, (3, 17)), 0, 0, chase=True)[0] == ours
    foreign = (0x3 << 20) | (ours & 0xFFFFF)
    assert read_bits(tile(foreign, (3, 17)), 0, 0, chase=True)[0] is None


@pytest.mark.parametrize("size", [(720, 1280), (474, 474), (256, 256)])
def test_the_mark_turns_smoothly_and_keeps_its_energy(portrait, size):
    """No pulse: the residual changes by under 0.5 grey levels (mean absolute) between any two consecutive frames
    over a whole turn, every frame keeps PSNR >= 40 dB, and frames half a turn apart carry opposite marks."""
    import cv2

    from parla.export.parity import psnr
    from parla.watermark.core import LAG, PERIOD

    frame = cv2.resize(portrait, size[::-1])
    emb = Embedder(0x5ABCDE)
    res = [emb(frame, t).astype(np.int16) - frame for t in range(PERIOD + 1)]
    steps = [np.abs(res[t] - res[t - 1]).mean() for t in range(1, PERIOD + 1)]
    assert max(steps) <= 0.5 and min(steps) > 0.05  # it moves, slowly
    assert all(psnr(frame + r, frame) >= 40.0 for r in res)
    raw = [emb.tile(t, 4.0) for t in range(PERIOD)]
    assert all(np.allclose(raw[t], -raw[t + LAG]) for t in range(LAG))


@pytest.mark.parametrize("index", [0, 4, 8, 13])
def test_a_still_frame_carries_the_whole_mark_at_any_turn(portrait, index):
    import cv2

    frame = cv2.resize(portrait, (960, 540))
    a = Accumulator()
    a.add(Embedder(0x5ABCDE)(frame, index))
    r = a.result()
    assert r.found and r.payload == 0x5ABCDE and r.confidence >= 0.99


def test_the_confidence_is_a_calibrated_probability():
    """The threshold is where a reading with a valid payload has a false positive rate of 1e-6; a reading typical of
    real video is improbable as a mark, one far above the threshold certain."""
    from parla.watermark.core import NULL_GUMBEL, false_positive_rate, null_survival, probability_marked, threshold

    for kind in ("video", "image"):
        t = threshold(kind)
        assert false_positive_rate(t, kind) <= 1e-6 * (1 + 1e-9)
        assert null_survival(t, kind) == pytest.approx(1e-3, rel=1e-3)  # the stricter of the two rules here
        assert null_survival(t + 0.5, kind) < 1e-3 < null_survival(t - 0.5, kind)
        typical = NULL_GUMBEL[kind][0]  # the null's mode
        assert probability_marked(typical, kind, payload_ok=False) < 0.05
        assert probability_marked(t + 10, kind, payload_ok=True) > 0.999999
        assert probability_marked(t, kind, payload_ok=True) > 0.99
