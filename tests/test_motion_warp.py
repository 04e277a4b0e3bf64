from __future__ import annotations

import numpy as np
import pytest

from parla.face.expression import ExpressionBasis, apply, invert, similarity_fit
from parla.face.warp import condition_maps, warp
from parla.models.head_blink import BlinkModel, BlinkProcess, HeadModel, HeadProcess, fit_ar2, fit_blinks


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
    patch = crop[chin[1] - 4 : chin[1] + 4, chin[0] - 4 : chin[0] + 4].astype(float)
    moved = out[chin[1] + 8 : chin[1] + 16, chin[0] - 4 : chin[0] + 4].astype(float)
    stayed = out[chin[1] - 4 : chin[1] + 4, chin[0] - 4 : chin[0] + 4].astype(float)
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


def test_rest_offset_moves_a_photos_lip_shape_part_way_to_its_speakers(portrait):
    """A photo mixes the person's lip shape with the moment's: a rest fitted with the shape moves each coefficient
    part of the way to the training speakers' (as far as the clips say a frame tells about its clip's median), then
    sets the gap (benchmarks/reenact_ceiling.py; not in the shipped basis, docs/decisions.md)."""
    from parla.face.landmarks import mouth_opening
    from parla.training.basis import fit_rest

    _, lm = portrait
    drop, spread = np.zeros((68, 2)), np.zeros((68, 2))
    drop[[7, 8, 9, 55, 56, 57, 58, 59, 65, 66, 67], 1] = 1.0  # the lower lip and the chin drop
    spread[[48, 60], 0], spread[[54, 64], 0] = -1.0, 1.0  # the corners move out
    comps = np.stack([drop.ravel() / np.linalg.norm(drop), spread.ravel() / np.linalg.norm(spread)])
    basis = ExpressionBasis(lm.astype(np.float32), comps.astype(np.float32), np.ones(2, np.float32))
    rng = np.random.default_rng(1)
    widths = rng.normal(0.0, 4.0, 60)  # each speaker's own mouth width, as much between them as within a clip
    tracks = [
        lm[None]
        + rng.uniform(0, 30, (80, 1, 1)) * drop[None] / np.linalg.norm(drop)
        + (w + rng.normal(0.0, 4.0, (80, 1, 1))) * spread[None] / np.linalg.norm(spread)
        for w in widths
    ]
    assert "shape_shrink" not in fit_rest(tracks, basis)  # measured, not shipped: only when asked for
    basis.meta.update(fit_rest(tracks, basis, shape=True))
    assert 0.35 < basis.meta["shape_shrink"][1] < 0.65  # half of a frame's width is its speaker's
    wide = lm + 12.0 * spread / np.linalg.norm(spread)  # a broad smile: more than any speaker's own width
    driven = basis.drive(wide, np.zeros(2), np.zeros(6), 0.0)
    width = lambda x: x[54, 0] - x[48, 0]  # noqa: E731
    assert width(lm) + 1.0 < width(driven) < width(wide) - 3.0  # part of the smile kept, part taken as the moment's
    assert mouth_opening(driven) == pytest.approx(basis.meta["rest_opening"], abs=0.01)
    np.testing.assert_allclose(driven[17:48], wide[17:48], atol=1e-6)  # brows, nose and eyes stay
    del basis.meta["shape_shrink"], basis.meta["shape_center"]  # a model folder from before: only the gap moves
    basis._portrait = None
    assert width(basis.drive(wide, np.zeros(2), np.zeros(6), 0.0)) > width(driven) + 3.0


def test_a_pause_rests_the_mouth_at_the_photos_own_gap():
    """``mouth_rest`` 1: the expression still and the inner lips at the photo's gap, at most the rest opening; the
    net's coefficients no longer move the mouth; ``mouth_close`` still makes the lips meet."""
    from parla.face.landmarks import INNER_LIP_PAIRS, mouth_opening
    from parla.modelfolder import ModelFolder

    basis = ModelFolder().basis  # the bundled model's, with its fitted rest
    rest = float(basis.meta["rest_opening"])
    k = basis.n_components
    canon = basis.mean_shape.astype(np.float64) * 200 + 100  # a face in crop pixels

    def with_gap(g: float) -> np.ndarray:  # the inner lips moved apart or together about their midpoints
        face = canon.copy()
        scale = g / mouth_opening(canon)
        for u, d in INNER_LIP_PAIRS:
            mid = 0.5 * (canon[u] + canon[d])
            face[u], face[d] = mid + scale * (canon[u] - mid), mid + scale * (canon[d] - mid)
        return face

    faces = {g: with_gap(g) for g in (0.03, 0.3)}
    rng = np.random.default_rng(0)
    for g, face in faces.items():
        assert mouth_opening(face) == pytest.approx(g, abs=0.01)
        for _ in range(3):
            z = rng.normal(size=k) * basis.stds * 2
            idle = basis.drive(face, z, np.zeros(6), 0.0, 0.0, 1.0)
            assert mouth_opening(idle) == pytest.approx(min(g, rest), abs=0.005), g
            talking = basis.drive(face, z, np.zeros(6), 0.0, 0.0, 0.0)
            assert abs(mouth_opening(talking) - min(g, rest)) > 0.005 or np.abs(talking - idle).max() > 0.5
            shut = basis.drive(face, z, np.zeros(6), 0.0, 1.0, 1.0)
            assert mouth_opening(shut) < 1e-6


def test_head_and_blink_models_are_seeded_and_bounded():
    rng = np.random.default_rng(1)
    tracks = [np.cumsum(rng.normal(0, 0.2, (300, 6)), 0) * 0.1 for _ in range(5)]
    voiced = [np.tile([0.0] * 25 + [1.0] * 25, 6) for _ in range(5)]
    head = fit_ar2(tracks, voiced)
    assert isinstance(head, HeadModel)

    def run(seed: int, scale: float = 1.0) -> np.ndarray:
        p = HeadProcess(head, np.random.default_rng(seed), scale=scale)
        return np.stack([p.step(1.0) for _ in range(500)])

    a, b = run(7), run(7)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a) <= head.limit + 1e-9) and a.std(0).max() > 0
    assert np.all(run(7, scale=0.0) == 0)
    blink = fit_blinks([2.5, 3.0, 4.1, 2.2, 6.0, 3.3])
    assert isinstance(blink, BlinkModel)
    proc = BlinkProcess(blink, 25.0, np.random.default_rng(3))
    closure = np.array([proc.step() for _ in range(25 * 60)])
    assert closure.min() == 0 and closure.max() == 1
    starts = np.flatnonzero(np.diff((closure > 0.5).astype(int)) == 1)
    assert 8 <= len(starts) <= 30  # per minute


def _synth_on(loud: np.ndarray, lookahead_frames: int, chunk: int = 0, min_pause_s: float = 0.0):
    """The synthesizer on a tone that is on where ``loud`` (per 40 ms frame) is true, with a random lips net."""
    from parla.edge.synth import MotionSynth

    from .conftest import logmel_settings

    settings = logmel_settings(min_pause_s=min_pause_s)
    rng = np.random.default_rng(0)
    lips_rng = np.random.default_rng(1)
    t = np.arange(640) / 16000
    audio = np.concatenate([(0.3 * np.sin(2 * np.pi * 300 * t) if on else np.zeros(640)) for on in loud])
    audio = (audio + rng.normal(0, 1e-4, len(audio))).astype(np.float32)
    k = settings.basis.n_components

    def lips(window: np.ndarray) -> np.ndarray:
        return lips_rng.normal(size=(1, k, window.shape[-1])).astype(np.float32)

    synth = MotionSynth(settings, lips, fps=25.0, lookahead_frames=lookahead_frames)
    chunk = chunk or len(audio)
    fms = [f for i in range(0, len(audio), chunk) for f in synth.push(audio[i : i + chunk])] + synth.flush(len(audio))
    return np.array([f.mouth_rest for f in fms]), np.stack([f.coeffs for f in fms])


def test_lips_close_in_a_pause_and_hold_still_in_it():
    loud = np.ones(100, bool)
    loud[40:70] = False
    close, coeffs = _synth_on(loud, 0)
    assert len(close) == 100
    assert np.all(close[45:70] == 1.0)  # closed through the pause
    assert close[30] == 0 and close[90] == 0  # open in speech
    assert np.abs(np.diff(coeffs[50:68], axis=0)).mean() < 0.3 * np.abs(np.diff(coeffs[10:28], axis=0)).mean()


def test_look_ahead_closes_the_lips_before_the_pause():
    loud = np.ones(100, bool)
    loud[40:70] = False
    from parla.edge.synth import CLOSE_RAMP, FILE_LOOKAHEAD_FRAMES

    live, _ = _synth_on(loud, 0)
    ahead, _ = _synth_on(loud, FILE_LOOKAHEAD_FRAMES)
    first = int(np.argmax(live == 1.0))  # CLOSE_RAMP frames into the pause
    assert int(np.argmax(ahead == 1.0)) == first - CLOSE_RAMP  # closed as the pause begins
    blip = loud.copy()
    blip[20] = False  # one silent frame inside speech is not a pause
    assert _synth_on(blip, FILE_LOOKAHEAD_FRAMES)[0][15:20].max() == 0.0
    # the closure does not depend on how the audio was chunked, with or without the look-ahead
    for la in (0, FILE_LOOKAHEAD_FRAMES):
        whole, _ = _synth_on(loud, la)
        for chunk in (320, 640, 4000):
            assert np.array_equal(_synth_on(loud, la, chunk)[0], whole), (la, chunk)


def test_a_minimum_pause_leaves_short_silences_to_the_net():
    """A phoneme net's mouth follows the words; only silences of ``min_pause_s`` close its lips: a 0.2-s dip inside
    speech stays open, a 1.2-s pause closes once 0.4 s of it is heard (live: its first 0.4 s; with the look-ahead
    that much earlier) and stays closed to its end (with the look-ahead: until the sound coming back is within the
    ramp), in one piece whatever the chunking."""
    from parla.edge.synth import CLOSE_RAMP, FILE_LOOKAHEAD_FRAMES

    loud = np.ones(120, bool)
    loud[20:25] = False  # 0.2 s
    loud[60:90] = False  # 1.2 s
    for la in (0, FILE_LOOKAHEAD_FRAMES):
        close, _ = _synth_on(loud, la, min_pause_s=0.4)
        assert close[:35].max() == 0.0, la  # audio that starts in speech finds the lips open (no ramp from rest)
        opens = 90 - (CLOSE_RAMP if la else 0)  # seen ahead, the sound coming back parts the lips before it
        assert close[60 + 10 - 1 - la] == 0.0 and np.all(close[60 + 10 + CLOSE_RAMP - la : opens] == 1.0), la
        assert close[90] == (0.0 if la else 1.0 - 1 / (CLOSE_RAMP + 1)), la  # apart at the first sound, or opening
        assert close[100] == 0.0
        assert np.array_equal(_synth_on(loud, la, 640, min_pause_s=0.4)[0], close)
    # without the minimum, the dip closes too
    assert _synth_on(loud, 0)[0][15:35].max() > 0
    # a stream that starts in silence starts in a pause: the lips stay at rest from the first frame
    quiet = np.zeros(30, bool)
    quiet[20:] = True
    assert np.all(_synth_on(quiet, 0, min_pause_s=0.4)[0][:20] == 1.0)


def test_a_lead_shows_the_lips_the_net_reads_later():
    """``lead_s``: frame i shows what the net reads at i / fps + lead (a whole frame's lead: frame i + 1's lips,
    exactly), on any chunking, and a stream waits that much more audio for each frame."""
    from dataclasses import replace

    from parla.edge.synth import MotionSynth

    from .conftest import logmel_settings

    base = logmel_settings(close_pauses=False)
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.1, 16000 * 3) * np.repeat(rng.uniform(0, 1, 75), 640)).astype(np.float32)
    proj = np.random.default_rng(1).normal(size=(base.basis.n_components, base.mel_mean.shape[0])).astype(np.float32)

    def lips(window: np.ndarray) -> np.ndarray:  # a net whose output at t depends on its input at t only
        return np.einsum("kc,bcw->bkw", proj, window) * 0.1

    def run(settings, chunk: int) -> np.ndarray:
        synth = MotionSynth(settings, lips, fps=25.0)
        fms = [f for i in range(0, len(audio), chunk) for f in synth.push(audio[i : i + chunk])]
        fms += synth.flush(len(audio))
        return np.stack([f.coeffs for f in fms])

    plain, led = run(base, 640), run(replace(base, lead_s=0.04), 640)
    assert len(led) == len(plain) == 75
    np.testing.assert_allclose(led[:-1], plain[1:], atol=1e-5)
    assert np.abs(led[:-1] - plain[:-1]).max() > 0.1  # the lead changes what a frame shows
    np.testing.assert_allclose(run(replace(base, lead_s=0.04), 1000), led, atol=1e-5)
    waits = [MotionSynth(replace(base, lead_s=lead), lips).latency_samples for lead in (0.0, 0.04)]
    assert waits[1] == waits[0] + 640


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


def _drive_all(lm: np.ndarray, rng: np.random.Generator):
    """Driving shapes across blinks, lip closures, expressions and the largest poses synthesis allows."""
    from parla.modelfolder import ModelFolder
    from parla.models.head_blink import SAFE_LIMIT

    basis = ModelFolder().basis
    for blink in (0.0, 0.5, 0.9, 0.97, 0.99, 1.0):
        for close in (0.0, 0.9, 0.99, 1.0):
            coeffs = np.clip(rng.normal(size=basis.n_components), -2.5, 2.5) * basis.stds * 2
            pose = rng.uniform(-1, 1, 6) * SAFE_LIMIT
            yield blink, close, basis.drive(lm, coeffs, pose, blink, close)


def test_warp_is_well_posed_for_closed_eyes_and_lips(portrait):
    """No fold and no wild displacement for any blink or lip closure (the spline used to explode when an upper
    and a lower lid met: a swirl over the whole face at every full blink)."""
    from parla.face.warp import MIN_JACOBIAN, jacobian_min, tps_grid

    _, lm = portrait
    grid = np.stack(np.meshgrid(np.linspace(0, 255, 33), np.linspace(0, 255, 33)), -1).reshape(-1, 2)
    for blink, close, drv in _drive_all(lm, np.random.default_rng(0)):
        mapped = tps_grid(lm, drv, 256)
        assert jacobian_min(mapped, 256) >= MIN_JACOBIAN, (blink, close)
        # no overshoot: nothing moves much further than the landmarks themselves do
        assert np.abs(mapped - grid).max() <= 1.5 * np.abs(drv - lm).max() + 2, (blink, close)


def test_the_unreconciled_spline_folds_where_the_warp_does_not(portrait):
    """The check above can fail: the plain spline on a 97 %-closed eye folds."""
    from parla.face.warp import REGULARISATIONS, _Spline, jacobian_min
    from parla.modelfolder import ModelFolder

    _, lm = portrait
    basis = ModelFolder().basis
    drv = basis.drive(lm, np.zeros(basis.n_components), np.zeros(6), 0.97, 0.0)
    (mapped,) = _Spline(drv, 256).grids([lm.astype(np.float64)], REGULARISATIONS[0])
    assert jacobian_min(mapped, 256) < 0


def test_several_sources_share_one_solve(portrait):
    """``tps_maps`` for a photo and a copy equals ``tps_map`` for each (one of them needing more smoothing)."""
    from parla.face.warp import tps_map, tps_maps
    from parla.modelfolder import ModelFolder

    _, lm = portrait
    basis = ModelFolder().basis
    drv = basis.drive(lm, np.zeros(basis.n_components), np.zeros(6), 0.97, 0.0)
    other = lm.astype(np.float64) + np.random.default_rng(0).normal(0, 0.5, lm.shape)
    both = tps_maps([lm, other], drv, 256)
    for src, (mx, my) in zip((lm, other), both, strict=True):
        ex, ey = tps_map(src, drv, 256)
        np.testing.assert_allclose(mx, ex, atol=1e-3)
        np.testing.assert_allclose(my, ey, atol=1e-3)


def test_the_guard_unfolds_crossed_control_points(portrait):
    from parla.face.warp import MIN_JACOBIAN, jacobian_min, tps_grid

    _, lm = portrait
    crossed = lm.copy()
    crossed[[36, 45]] = lm[[45, 36]]  # the outer eye corners swapped: no smooth map without a fold
    assert jacobian_min(tps_grid(lm, crossed, 256), 256) >= MIN_JACOBIAN


def test_the_mouth_never_opens_wider_than_the_training_speakers():
    from parla.edge.synth import MAX_COEFF_STD, MotionSettings, MotionSynth
    from parla.modelfolder import ModelFolder

    from .conftest import known_front_end

    settings = MotionSettings.from_folder(ModelFolder())
    k = settings.basis.n_components
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    wild = lambda w: np.full((1, k, w.shape[-1]), 50.0, np.float32)  # noqa: E731 - a wild lips net
    synth = MotionSynth(settings, wild, phonemes=known_front_end(settings, audio))
    fms = synth.push(audio) + synth.flush(len(audio))
    z = np.stack([f.coeffs / settings.basis.stds for f in fms])
    assert np.abs(z).max() <= MAX_COEFF_STD + 1e-5 and np.abs(z).max() > MAX_COEFF_STD - 0.5


def test_the_warp_maps_do_not_depend_on_the_blas_threads():
    """`parla stream` runs its BLAS on one thread, a library caller's on all cores: the same frames need the same
    maps (a float32 product's last bits moved with the thread count, and with them a few pixels of each frame)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from parla.face.warp import GRID, upsample

    rng = np.random.default_rng(0)
    for size in (256, 400):
        grid = rng.uniform(0, size, (GRID * GRID, 2))
        many = upsample(grid, size)
        with threadpoolctl.threadpool_limits(1):
            one = upsample(grid, size)
        assert all(np.array_equal(a, b) for a, b in zip(many, one, strict=True))
        assert many[0].dtype == np.float32 and many[0].shape == (size, size)


def test_a_model_folders_basis_is_checked_before_use(tmp_path):
    """basis.npz drives every frame: a copy that is not the one the folder's config lists is refused."""
    import shutil

    from parla.errors import ModelNotFoundError
    from parla.modelfolder import ModelFolder, bundled_path

    folder = tmp_path / "model"
    shutil.copytree(bundled_path(), folder)
    basis = ModelFolder(folder).basis
    basis.meta["rest_opening"] = 0.5  # lips held apart in every frame
    basis.save(folder / "basis.npz")
    with pytest.raises(ModelNotFoundError, match="basis.npz"):
        _ = ModelFolder(folder).basis
