"""The closed-lip copy of an open-mouthed photo (issue 15): the lips meet, the mouth's inside is gone, nothing
else moves, and the renderer shows it when the speech closes the lips. And the opened copies of a closed-mouthed
photo (issue 14): the lips part onto a painted inside, and the renderer shows it when the speech opens them."""

from __future__ import annotations

import numpy as np
import pytest

from parla.face.landmarks import INNER_LIP_PAIRS, interocular, mouth_opening
from parla.face.mouth import COPY_FRACTIONS, OPEN_GAPS, LipCloser, gap, source_weights


def teeth_fraction(image: np.ndarray, lm: np.ndarray) -> float:
    """Share of bright, barely red, barely yellow pixels (teeth; skin is yellower, lips redder) inside the
    outer-lip polygon."""
    import cv2

    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[48:60]).astype(np.int32)], 1)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    teeth = (lab[..., 0] > 0.85 * 255) & (lab[..., 1] - 128 < 14) & (lab[..., 2] - 128 < 12)
    return float(teeth[mask > 0].mean())


@pytest.fixture(scope="module")
def portrait(face_path):
    from parla.face.portrait import Portrait

    return Portrait.load(face_path, 128)


def test_the_smiling_astronaut_gets_a_closed_copy_without_teeth(portrait):
    p = portrait
    assert mouth_opening(p.landmarks) > 0.1  # the fixture shows its teeth
    assert p.mouths and p.mouths[-1].gap == 0.0
    assert teeth_fraction(p.crop, p.landmarks) > 0.1
    assert teeth_fraction(p.mouths[-1].crop, p.mouths[-1].landmarks) < 0.01
    # the inner lips meet on the seam; the outer lips moved towards each other; the eyes did not move
    lm = p.mouths[-1].landmarks
    for u, d in INNER_LIP_PAIRS:
        assert lm[u, 1] == pytest.approx(lm[d, 1], abs=0.2)
    assert lm[57, 1] < p.landmarks[57, 1] and lm[51, 1] > p.landmarks[51, 1]
    np.testing.assert_array_equal(lm[17:48], p.landmarks[17:48])
    # only the mouth region changed: above the nose's base and beside the mouth the pixels are the photo's
    top, x0, x1 = int(p.landmarks[33, 1]), int(p.landmarks[48, 0]), int(np.ceil(p.landmarks[54, 0]))
    np.testing.assert_array_equal(p.mouths[-1].crop[:top], p.crop[:top])
    np.testing.assert_array_equal(p.mouths[-1].crop[:, : x0 - 1], p.crop[:, : x0 - 1])
    np.testing.assert_array_equal(p.mouths[-1].crop[:, x1 + 2 :], p.crop[:, x1 + 2 :])


def test_the_closed_photo_matches_the_cut_crop(portrait):
    """The copy at the photo's resolution is the same closing as the crop's (aligned back, they agree)."""
    from parla.face.align import align_face

    p = portrait
    assert p.mouths and p.mouths[-1].gap == 0.0
    crop, _ = align_face(p.mouths[-1].image, p.alignment.to_image(p.landmarks))
    c = p.landmarks[48:68].mean(0).astype(int)
    box = (slice(c[1] - 20, c[1] + 20), slice(c[0] - 30, c[0] + 30))
    assert np.abs(crop[box].astype(int) - p.mouths[-1].crop[box]).mean() < 6
    assert np.abs(p.crop[box].astype(int) - p.mouths[-1].crop[box]).mean() > 8  # the closing itself is large
    changed = np.any(p.mouths[-1].image != p.image, axis=2)
    ys, xs = np.nonzero(changed)
    mouth = p.alignment.to_image(p.landmarks[48:68])
    iod = float(interocular(p.alignment.to_image(p.landmarks)))
    assert xs.min() >= mouth[:, 0].min() - 2 and xs.max() <= mouth[:, 0].max() + 2
    assert ys.max() - ys.min() < 2.5 * iod  # nose base to below the chin, no further


def test_source_weights_follow_the_driving_gap(portrait):
    """The photo while the warp can show the gap, then the quarter copy, then the closed one; never more than two
    at once, weights summing to 1, and every level reached."""
    src = portrait.landmarks

    def driven(f: float) -> np.ndarray:
        d = src.copy()
        for u, lo in INNER_LIP_PAIRS:
            mid = 0.5 * (src[u] + src[lo])
            d[u], d[lo] = mid + f * (src[u] - mid), mid + f * (src[lo] - mid)
        return d

    gaps = (gap(src), *(q * gap(src) for q in COPY_FRACTIONS))
    assert gaps == (gap(src), *(m.gap for m in portrait.mouths))
    assert source_weights(gaps, src) == [(0, 1.0)]
    assert source_weights(gaps, driven(0.0)) == [(2, 1.0)]
    assert source_weights(gaps, driven(0.3)) == [(1, 1.0)]
    level = []
    for f in np.linspace(1.2, 0.0, 121):
        w = source_weights(gaps, driven(f))
        assert 1 <= len(w) <= 2 and sum(x for _, x in w) == pytest.approx(1.0)
        level.append(sum(i * x for i, x in w))
    assert np.all(np.diff(level) >= -1e-9) and level[0] == 0 and level[-1] == 2


def test_the_quarter_copy_keeps_a_quarter_of_the_gap(portrait):
    p = portrait
    quarter = p.mouths[0]
    assert quarter.gap == pytest.approx(0.25 * gap(p.landmarks))
    g0, g1 = gap(p.mouths[-1].landmarks), gap(quarter.landmarks)
    assert g1 > 2 * g0 and g1 < 0.5 * gap(p.landmarks)
    assert teeth_fraction(quarter.crop, quarter.landmarks) > 0.005  # the teeth next to the lips still show


def test_a_closed_mouthed_photo_needs_no_closed_copy():
    """Landmarks with the lips together: nothing to close (the opened copies are made instead, below)."""
    from parla.face.mouth import needs_copies

    lm = np.zeros((68, 2))
    lm[36:42] = [100, 100]
    lm[42:48] = [160, 100]
    lm[48:60, 0] = np.linspace(100, 160, 12)
    lm[48:68, 1] = 170
    lm[60:68, 0] = [104, 115, 130, 145, 156, 145, 130, 115]  # 61/67, 62/66, 63/65 one above the other
    assert not needs_copies(lm) and gap(lm) == 0.0


def test_lip_edges_are_found_where_the_detector_sits_on_the_teeth():
    """A drawn mouth: red lips, white teeth, dark gaps; landmarks whose inner points sit on the teeth. The closed
    copy keeps no dark or white row between the lips."""
    import cv2

    from parla.face.mouth import cut_crop

    img = np.full((256, 256, 3), (200, 160, 140), np.uint8)  # skin
    cv2.ellipse(img, (128, 180), (40, 22), 0, 0, 360, (180, 40, 50), -1)  # lips
    cv2.rectangle(img, (98, 172), (158, 188), (20, 10, 10), -1)  # the dark inside
    cv2.rectangle(img, (100, 176), (156, 184), (235, 235, 230), -1)  # teeth
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[33], lm[8] = [98, 100], [158, 100], [128, 140], [128, 230]
    xs = np.linspace(88, 168, 7)
    lm[48:55] = np.stack([xs, [180, 166, 160, 159, 160, 166, 180]], 1)  # upper outer, 48..54
    lm[55:60] = np.stack([xs[5:0:-1], [194, 199, 201, 199, 194]], 1)  # lower outer, 55..59
    lm[60], lm[64] = [98, 180], [158, 180]
    lm[61:64] = np.stack([[113, 128, 143], [177, 177, 177]], 1)  # on the teeth, not the lip's edge
    lm[65:68] = np.stack([[143, 128, 113], [183, 183, 183]], 1)
    closed = cut_crop(img, LipCloser(lm, img))
    naive = cut_crop(img, LipCloser(lm))
    column = closed[150:215, 128].astype(int)
    dark = (column.sum(1) < 150).sum()
    white = (column.min(1) > 200).sum()
    assert dark <= 1 and white == 0, (dark, white)
    assert (naive[150:215, 128].astype(int).sum(1) < 150).sum() >= 3  # the detector's points alone leave the gap


def test_the_renderer_closes_an_open_photo(face_path):
    """Through the one frame engine: a frame driven with the lips closed shows no teeth; the same frame without
    the closed copy (the renderer before issue 15) shows the teeth between the squeezed lips."""
    from dataclasses import replace

    from parla.edge.avatar import Avatar
    from parla.edge.render import FrameRenderer
    from parla.edge.synth import FrameMotion
    from parla.face.detect import detect_faces, fit_landmarks

    with Avatar.from_image(face_path, "x86-cpu", overrides={"backend": "onnxruntime", "device": "cpu"}) as av:
        k = av.settings.basis.n_components
        shut = FrameMotion(0, np.zeros(k), np.zeros(6), 0.0, 1.0, False, np.zeros(k))
        now = av.new_renderer(stages=False).render(shut)
        before = FrameRenderer(replace(av.portrait, mouths=()), av.settings.basis, av.refiner).render(shut)
    box = tuple(detect_faces(now)[0].box)
    lm_now, lm_before = fit_landmarks(now, box), fit_landmarks(before, box)
    # teeth between the lips before, none now (the fixture's face is 60 px wide: too small for the detector's
    # inner-lip gap to tell, so the teeth are what is measured)
    assert teeth_fraction(before, lm_before) > 0.015
    assert teeth_fraction(now, lm_now) < 0.005


def closing(p, amount: float) -> np.ndarray:
    """The portrait's landmarks with the inner lips brought together by ``amount`` of their gap (and a nod of the
    rest of the face, so that every map has something to do)."""
    drv = p.landmarks.astype(np.float64).copy()
    for u, d in INNER_LIP_PAIRS:
        mid = (drv[u, 1] + drv[d, 1]) / 2
        drv[u, 1] += amount * (mid - drv[u, 1])
        drv[d, 1] += amount * (mid - drv[d, 1])
    drv[:17] += (1.5, 1.0)
    return drv


def test_a_copy_moves_only_the_mouth(portrait):
    """A copy's spline is global; its map is the photo's beyond MAP_BAND around where it differs, its own inside."""
    from parla.face.mouth import MAP_BAND, localize
    from parla.face.warp import tps_grids, upsample

    p, copy = portrait, portrait.mouths[-1]
    drv = closing(p, 0.9)
    size = p.crop.shape[0]
    grids = tps_grids([p.landmarks.astype(np.float64), copy.landmarks.astype(np.float64)], drv, size)
    photo, own = upsample(grids[0], size), upsample(grids[1], size)
    mx, my = localize(grids[1], photo, copy.box)
    x0, y0, x1, y1 = copy.box
    dist = np.maximum(np.maximum(x0 - photo[0], photo[0] - x1), np.maximum(y0 - photo[1], photo[1] - y1))
    far, inside = dist >= MAP_BAND, dist <= 0
    assert far.any() and inside.any()
    assert np.abs(own[0] - photo[0])[far].max() > 0.05  # left alone, the copy would move the rest of the face
    np.testing.assert_array_equal(mx[far], photo[0][far])
    np.testing.assert_array_equal(my[far], photo[1][far])
    np.testing.assert_allclose(mx[inside], own[0][inside], atol=1e-3)
    np.testing.assert_allclose(my[inside], own[1][inside], atol=1e-3)


def test_a_hand_over_warps_the_second_source_at_the_mouth_only(portrait):
    """The second source is remapped over the part where the two differ; the frame equals blending both whole."""
    import cv2

    from parla.face.composite import NativeCompositor
    from parla.face.mouth import localize
    from parla.face.warp import tps_grids, upsample

    p = portrait
    comp = NativeCompositor(p.image, p.alignment, copies=tuple(m.image for m in p.mouths))
    size, remap, calls = p.crop.shape[0], comp._remap, []
    comp._remap = lambda i, px, py: calls.append(px.size) or remap(i, px, py)
    for amount, (a, b), weight in ((0.5, (0, 1), 0.4), (0.85, (1, 2), 0.7)):
        drv = closing(p, amount)
        grids = tps_grids([s.landmarks.astype(np.float64) for s in (p, *p.mouths)], drv, size)
        photo = upsample(grids[0], size)
        maps = {0: photo, **{i: localize(grids[i], photo, p.mouths[i - 1].box) for i in (1, 2)}}
        calls.clear()
        got = comp.sources([(a, *maps[a], 1.0 - weight), (b, *maps[b], weight)], None)
        whole = cv2.addWeighted(comp._warped(a, *maps[a]), 1 - weight, comp._warped(b, *maps[b]), weight, 0)
        want = p.image.copy()
        x0, y0, x1, y1 = comp.box
        want[y0:y1, x0:x1] = cv2.blendLinear(whole, comp.bg, comp.alpha, comp.beta)
        assert np.abs(got.astype(int) - want).max() <= 1
        assert calls[1] < 0.5 * calls[0], calls  # the second remap covered less than half the footprint


@pytest.fixture(scope="module")
def closed_portrait(portrait):
    """The astronaut with her lips together: the closed copy of the photo as a portrait of its own (self-made from
    the public-domain fixture), with the copy's landmarks."""
    from parla.face.portrait import Portrait

    closed = portrait.mouths[-1]
    return Portrait.from_landmarks(closed.image, portrait.alignment.to_image(closed.landmarks), 128)


def inside_darkness(image: np.ndarray, lm: np.ndarray) -> float:
    """Share of pixels inside the inner-lip polygon darker than half the lips' median brightness."""
    import cv2

    inner = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lm[60:68]).astype(np.int32)], 1)
    lips = np.zeros_like(inner)
    cv2.fillPoly(lips, [np.round(lm[48:60]).astype(np.int32)], 1)
    lips[inner > 0] = 0
    light = image.astype(np.float32).mean(2)
    if not inner.any():
        return 0.0
    return float((light[inner > 0] < 0.5 * np.median(light[lips > 0])).mean())


def test_a_closed_photo_gets_opened_copies(closed_portrait):
    """Three copies with the lips apart by OPEN_GAPS inter-ocular distances, the gap dark inside; the eyes and
    everything above the nose's base and beside the mouth are the photo's."""
    p = closed_portrait
    iod = float(interocular(p.landmarks))
    assert gap(p.landmarks) < 0.02 * iod
    assert [m.gap / iod for m in p.mouths] == pytest.approx(OPEN_GAPS, rel=0.12)
    top, x0, x1 = int(p.landmarks[33, 1]) - 1, int(p.landmarks[48, 0]), int(np.ceil(p.landmarks[54, 0]))
    for m in p.mouths:
        np.testing.assert_array_equal(m.landmarks[17:48], p.landmarks[17:48])
        np.testing.assert_array_equal(m.crop[:top], p.crop[:top])
        np.testing.assert_array_equal(m.crop[:, : x0 - 1], p.crop[:, : x0 - 1])
        np.testing.assert_array_equal(m.crop[:, x1 + 2 :], p.crop[:, x1 + 2 :])
        assert inside_darkness(m.crop, m.landmarks) > 0.3
    assert inside_darkness(p.mouths[-1].crop, p.mouths[-1].landmarks) > 0.5


def test_the_opened_photo_matches_the_opened_crop(closed_portrait):
    """The copy at the photo's resolution is the same opening as the crop's (aligned back, they agree)."""
    from parla.face.align import align_face

    p = closed_portrait
    wide = p.mouths[-1]
    crop, _ = align_face(wide.image, p.alignment.to_image(p.landmarks))
    c = p.landmarks[48:68].mean(0).astype(int)
    box = (slice(c[1] - 20, c[1] + 20), slice(c[0] - 30, c[0] + 30))
    assert np.abs(crop[box].astype(int) - wide.crop[box]).mean() < 6
    assert np.abs(p.crop[box].astype(int) - wide.crop[box]).mean() > 8  # the opening itself is large


def test_source_weights_open_a_closed_photo(closed_portrait):
    """The photo for a shut mouth, the widest copy for a wide one; never more than two, every level reached, and
    the wider the driving gap the wider the source."""
    p = closed_portrait
    gaps = (gap(p.landmarks), *(m.gap for m in p.mouths))
    iod = float(interocular(p.landmarks))

    def driven(g: float) -> np.ndarray:
        d = p.landmarks.astype(np.float64).copy()
        for u, lo in INNER_LIP_PAIRS:
            mid = 0.5 * (d[u] + d[lo])
            d[u], d[lo] = mid - (0, 0.5 * g * iod), mid + (0, 0.5 * g * iod)
        return d

    assert source_weights(gaps, p.landmarks) == [(0, 1.0)]
    assert source_weights(gaps, driven(0.5)) == [(3, 1.0)]
    level = []
    for g in np.linspace(0.0, 0.5, 101):
        w = source_weights(gaps, driven(g))
        assert 1 <= len(w) <= 2 and sum(x for _, x in w) == pytest.approx(1.0)
        level.append(sum(i * x for i, x in w))
    assert np.all(np.diff(level) >= -1e-9) and level[0] == 0 and level[-1] == 3


def test_the_renderer_opens_a_closed_photo(face_path, closed_portrait):
    """Through the one frame engine: a frame driven with the lips wide apart shows a dark inside between them;
    the same frame without the opened copies (the renderer before) shows stretched lips."""
    from dataclasses import replace

    from parla.edge.avatar import Avatar
    from parla.edge.render import FrameRenderer
    from parla.edge.synth import FrameMotion

    with Avatar.from_image(face_path, "x86-cpu", overrides={"backend": "onnxruntime", "device": "cpu"}) as av:
        basis = av.settings.basis
        k = basis.n_components
        direction = np.asarray(basis.meta["open_direction"], np.float64)
        p = closed_portrait
        # open until the driving gap is 0.3 inter-ocular distances
        scale = next(
            s
            for s in np.linspace(0, 60, 601)
            if mouth_opening(basis.drive(p.landmarks, s * direction, np.zeros(6), 0.0)) > 0.3
        )
        wide = FrameMotion(0, scale * direction, np.zeros(6), 0.0, 0.0, True, np.zeros(k))
        drv = p.alignment.to_image(basis.drive(p.landmarks, wide.coeffs, wide.pose, 0.0))
        now = FrameRenderer(p, basis, av.refiner).render(wide)
        before = FrameRenderer(replace(p, mouths=()), basis, av.refiner).render(wide)
    assert inside_darkness(before, drv) < 0.1
    assert inside_darkness(now, drv) > 0.5


def test_a_black_and_white_photo_opens_onto_grey(closed_portrait):
    """The painted inside and teeth of a grey photo are grey (a tinted mouth in a black-and-white portrait)."""
    from parla.face.portrait import Portrait

    p = closed_portrait
    grey = np.repeat(p.image.mean(2, keepdims=True).round().astype(np.uint8), 3, axis=2)
    q = Portrait.from_landmarks(grey, p.alignment.to_image(p.landmarks), 128)
    assert len(q.mouths) == len(OPEN_GAPS)
    for m in q.mouths:
        assert np.ptp(m.image.astype(int), axis=2).max() <= 1
    colour = p.mouths[-1].crop.astype(int)
    assert np.ptp(colour, axis=2).max() > 30  # the colour photo's inside is tinted with its lips' hue


def test_eyes_in_shadow_do_not_paint_dark_teeth(closed_portrait):
    """The teeth take the whites of the eyes; where the eyes read dark (shadow, glasses, a squint: eval p03's teeth
    were painted brown-black), they are brought up to TEETH_MIN_CHEEK of the cheeks' brightness."""
    import cv2

    from parla.face.lip_opener import CHEEKS, EYES, _mouth_colours, region_mask
    from parla.face.mouth import TEETH_MIN_CHEEK

    p = closed_portrait
    lm = p.alignment.to_image(p.landmarks)
    image = p.image.copy()
    _, _, lit = _mouth_colours(image, lm)
    eyes = cv2.dilate(region_mask(image.shape, lm, EYES), np.ones((5, 5), np.uint8))
    image[eyes > 0] = (image[eyes > 0] * 0.25).astype(np.uint8)  # the eyes in deep shadow
    _, _, shaded = _mouth_colours(image, lm)
    cheek = float(np.median(image[region_mask(image.shape, lm, CHEEKS) > 0].astype(np.float32).mean(1)))
    assert shaded.mean() >= TEETH_MIN_CHEEK * cheek - 1.0  # the floor, not the shadow's 0.25
    assert shaded.mean() > 0.5 * lit.mean()
    assert np.ptp(shaded) < np.ptp(lit) + 1.0  # no tint stronger than the lit eyes gave
