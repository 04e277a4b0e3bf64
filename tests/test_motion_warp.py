from __future__ import annotations

import numpy as np
import pytest

from parla.face.expression import ExpressionBasis, apply, invert, similarity_fit
from parla.face.warp import condition_maps, warp
from parla.models.head_blink import BlinkModel, HeadModel, fit_ar2, fit_blinks


@pytest.fixture(scope="module")
def portrait(face_path):
    from parla.face.align import align_face
    from parla.face.detect import detect_faces, select_face
    from parla.media.image import load_image

    image = load_image(face_path)
    crop, a = align_face(image, select_face(detect_faces(image)).landmarks)
    return crop, a.to_crop(select_face(detect_faces(image)).landmarks)


def test_identity_warp_keeps_the_image(portrait):
    crop, lm = portrait
    same = warp(crop, lm, lm)
    inner = np.abs(same[8:-8, 8:-8].astype(int) - crop[8:-8, 8:-8])
    assert inner.mean() < 1.0 and inner.max() < 40


def test_warp_moves_the_jaw(portrait):
    crop, lm = portrait
    drv = lm.copy()
    drv[[6, 7, 8, 9, 10], 1] += 12
    out = warp(crop, lm, drv)
    chin = lm[8].astype(int)
    # The chin's pixels now appear ~12 px lower.
    patch = crop[chin[1] - 4: chin[1] + 4, chin[0] - 4: chin[0] + 4].astype(float)
    moved = out[chin[1] + 8: chin[1] + 16, chin[0] - 4: chin[0] + 4].astype(float)
    stayed = out[chin[1] - 4: chin[1] + 4, chin[0] - 4: chin[0] + 4].astype(float)
    assert np.abs(moved - patch).mean() < np.abs(stayed - patch).mean()
    assert np.array_equal(out[:4, :4], crop[:4, :4])  # the border is anchored


def test_condition_maps(portrait):
    _, lm = portrait
    maps = condition_maps(lm, 128)
    assert maps.shape == (3, 128, 128) and maps.max() <= 1.0
    eyes = maps[1] > 0.5
    ys = np.nonzero(eyes)[0]
    assert eyes.sum() > 10 and ys.mean() < 64  # eyes are in the upper half


def test_similarity_fit_recovers_a_transform():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 100, (68, 2))
    ang, s, t = np.radians(12), 1.3, np.array([5.0, -7.0])
    m = np.array([[s * np.cos(ang), -s * np.sin(ang), t[0]], [s * np.sin(ang), s * np.cos(ang), t[1]]])
    fit = similarity_fit(pts, apply(m, pts))
    np.testing.assert_allclose(fit, m, atol=1e-9)
    np.testing.assert_allclose(apply(invert(m), apply(m, pts)), pts, atol=1e-9)


def test_drive_with_no_motion_returns_the_portrait(portrait):
    _, lm = portrait
    k = 4
    basis = ExpressionBasis(lm.astype(np.float32), np.eye(k, 136, dtype=np.float32), np.ones(k, np.float32))
    same = basis.drive(lm, np.zeros(k), np.zeros(6), 0.0)
    np.testing.assert_allclose(same, lm, atol=1e-6)
    closed = basis.drive(lm, np.zeros(k), np.zeros(6), 1.0)
    assert np.abs(closed[37] - closed[41]).sum() < 1e-6  # eyelids meet
    turned = basis.drive(lm, np.zeros(k), np.array([8.0, 0, 0, 0, 0, 0]), 0.0)
    assert np.abs(turned - lm)[:, 0].max() > 2  # yaw moves points sideways


def test_rest_offset_brings_an_open_mouth_to_the_rest_opening(portrait):
    from parla.face.landmarks import mouth_opening
    from parla.training.basis import fit_rest

    _, lm = portrait
    comp = np.zeros((68, 2))  # one component: the lower lip and the chin drop
    comp[[7, 8, 9, 55, 56, 57, 58, 59, 65, 66, 67], 1] = 1.0
    comp /= np.linalg.norm(comp)
    basis = ExpressionBasis(lm.astype(np.float32), comp.reshape(1, 136).astype(np.float32), np.ones(1, np.float32))
    assert np.array_equal(basis.rest_offset(lm), np.zeros(1))  # no fitted rest: a portrait is driven as it is
    rng = np.random.default_rng(0)
    tracks = [lm[None] + rng.uniform(0, 30, (60, 1, 1)) * comp[None] for _ in range(4)]  # talking clips
    basis.meta.update(fit_rest(tracks, basis))
    assert basis.meta["rest_opening"] == pytest.approx(np.median([np.median(mouth_opening(t)) for t in tracks]))
    wide = lm + 60.0 * comp  # a photo taken mid-word
    assert mouth_opening(wide) > basis.meta["rest_opening"] + 0.1
    driven = basis.drive(wide, np.zeros(1), np.zeros(6), 0.0)
    assert mouth_opening(driven) == pytest.approx(basis.meta["rest_opening"], abs=0.01)
    np.testing.assert_allclose(driven[17:48], wide[17:48], atol=1e-6)  # brows, nose and eyes stay


def test_head_and_blink_models_are_seeded_and_bounded():
    rng = np.random.default_rng(1)
    tracks = [np.cumsum(rng.normal(0, 0.2, (300, 6)), 0) * 0.1 for _ in range(5)]
    voiced = [np.tile([0.0] * 25 + [1.0] * 25, 6) for _ in range(5)]
    head = fit_ar2(tracks, voiced)
    assert isinstance(head, HeadModel)
    v = np.ones(500)
    a, b = head.sample(v, np.random.default_rng(7)), head.sample(v, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a) <= head.limit + 1e-9) and a.std(0).max() > 0
    assert np.all(head.sample(v, np.random.default_rng(7), scale=0.0) == 0)
    blink = fit_blinks([2.5, 3.0, 4.1, 2.2, 6.0, 3.3])
    assert isinstance(blink, BlinkModel)
    closure = blink.sample(25 * 60, 25.0, np.random.default_rng(3))
    starts = np.flatnonzero(np.diff((closure > 0.5).astype(int)) == 1)
    assert 8 <= len(starts) <= 30  # per minute


def test_lips_close_before_a_pause_and_stay_still_in_it():
    from parla.wrapper import _closure

    silent = np.zeros(30, bool)
    silent[10:20] = True
    c = _closure(silent, ramp=3)
    assert np.all(c[10:20] == 1.0)  # closed and still through the pause
    assert 0 < c[8] < c[9] < 1 and 0 < c[21] < c[20] < 1  # ramps on both sides
    assert c[0] == 0 and c[29] == 0
    assert np.all(_closure(np.zeros(10, bool), ramp=3) == 0)


def test_running_mean_holds_the_mouth_in_pauses():
    from parla.wrapper import _running_mean

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    m = _running_mean(x, 25)
    assert m.shape == x.shape
    assert np.abs(np.diff(m, axis=0)).mean() < 0.3 * np.abs(np.diff(x, axis=0)).mean()  # far stiller
    assert np.allclose(m[25], x[13:38].mean(0))  # centred window
    assert np.allclose(_running_mean(np.ones((5, 2)), 9), 1.0)  # ends are normalised, not shrunk


def test_mouth_lmd_ignores_head_position():
    from parla.metrics.reenact import mouth_lmd

    rng = np.random.default_rng(0)
    base = rng.uniform(50, 150, (1, 68, 2))
    track = np.repeat(base, 20, 0)
    moved = track + np.array([15.0, -4.0])  # the same mouth shape elsewhere in the frame
    assert mouth_lmd(track, moved) == pytest.approx(0.0, abs=1e-9)
    opened = track.copy()
    opened[:, 57, 1] += 10
    assert mouth_lmd(track, opened) > 0.005
