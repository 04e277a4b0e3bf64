from __future__ import annotations

import numpy as np
import pytest

from parla.errors import AmbiguousFaceError, FaceIndexError, NoFaceFoundError
from parla.face.align import CROP_SIZE, align_face, feather_mask
from parla.face.composite import NativeCompositor
from parla.face.detect import detect_boxes, detect_faces, face_embedding, select_face
from parla.face.landmarks import eye_centres, mouth_opening
from parla.media.image import load_image

from .conftest import shared

ROUND_TRIP_PSNR_DB = 28.0  # crop -> paste-back of an unchanged crop, over the pasted footprint


def footprint_psnr(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    changed = np.abs(diff).sum(-1) > 0
    if not changed.any():
        return float("inf")
    return float(10 * np.log10(255.0**2 / np.mean(diff[changed] ** 2)))


def check_align_round_trip(image: np.ndarray, name: str) -> None:
    face = select_face(detect_faces(image), name=name)
    crop, a = align_face(image, face.landmarks)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
    # Canonical geometry: eyes level and in the upper half, mouth below them.
    lm = a.to_crop(face.landmarks)
    le, re = eye_centres(lm)
    assert abs(le[1] - re[1]) < 0.04 * CROP_SIZE, name
    assert 0.3 * CROP_SIZE < le[1] < 0.5 * CROP_SIZE, name
    assert 0.55 * CROP_SIZE < lm[48:60, 1].mean() < 0.75 * CROP_SIZE, name
    assert lm[8, 1] < 0.95 * CROP_SIZE, name  # the chin stays inside
    np.testing.assert_allclose(a.to_image(lm), face.landmarks, atol=1e-3)
    import cv2

    # the crop mapped back into the photo (what the alignment's inverse does) is the photo again
    size = image.shape[1::-1]
    warped = cv2.warpAffine(crop, a.inverse, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(feather_mask(CROP_SIZE), a.inverse, size, flags=cv2.INTER_LINEAR)[..., None]
    back = np.clip(image + alpha * (warped.astype(np.float32) - image) + 0.5, 0, 255).astype(np.uint8)
    assert back.shape == image.shape and back.dtype == np.uint8
    assert footprint_psnr(back, image) > ROUND_TRIP_PSNR_DB, name
    # and compositing with the identity warp and no change gives the photo itself
    grid = np.meshgrid(np.arange(CROP_SIZE, dtype=np.float32), np.arange(CROP_SIZE, dtype=np.float32))
    same = NativeCompositor(image, a)(*grid, None)
    assert same.shape == image.shape and np.abs(same.astype(int) - image).max() <= 1, name


def test_astronaut_aligns_and_pastes_back(face_path):
    check_align_round_trip(load_image(face_path), "astronaut")


def test_a_small_face_is_resampled_with_lanczos_sharpness(face_path):
    """A small footprint is remapped from a copy upsampled once with Lanczos: a sub-pixel warp matches the direct
    (slow) Lanczos remap of the photo within a grey level on average, with the same Laplacian energy."""
    import cv2

    image = load_image(face_path)
    crop, a = align_face(image, select_face(detect_faces(image)).landmarks)
    comp = NativeCompositor(image, a)
    assert comp.factor == 3
    gx, gy = np.meshgrid(np.arange(CROP_SIZE, dtype=np.float32), np.arange(CROP_SIZE, dtype=np.float32))
    mx, my = gx + 0.37 + 0.01 * gy, gy - 0.29  # a sub-pixel shift and shear
    got = comp(mx, my, None)
    px, py = comp._positions(mx, my)
    want = image.copy()
    x0, y0, x1, y1 = comp.box
    direct = cv2.remap(image, px, py, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    want[y0:y1, x0:x1] = cv2.blendLinear(direct, comp.bg, comp.alpha, comp.beta)
    assert np.abs(got.astype(int) - want).mean() < 0.5

    def energy(x: np.ndarray) -> float:
        return float((cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_32F) ** 2).mean())

    assert 0.95 < energy(got[y0:y1, x0:x1]) / energy(want[y0:y1, x0:x1]) < 1.08


def test_a_large_face_keeps_its_detail_in_a_file_and_trades_it_for_time_live(face_path):
    """A footprint above CUBIC_MAX_PX: a file's frames are resampled bicubically, a live stream's bilinearly (the
    2-core budget); under a sub-pixel warp of a finely textured face the bicubic frame keeps clearly more detail."""
    import cv2

    from parla.face.composite import CUBIC_MAX_PX

    image = load_image(face_path)
    lm = select_face(detect_faces(image)).landmarks
    big = cv2.resize(image, None, fx=7, fy=7, interpolation=cv2.INTER_CUBIC)
    grain = np.random.default_rng(0).normal(0, 12, big.shape[:2])[..., None]  # pixel-level texture (skin, pores)
    big = np.clip(big + grain, 0, 255).astype(np.uint8)
    _, a = align_face(big, lm * 7 + 3)  # the landmarks at the enlarged size (pixel centres)
    live, file = NativeCompositor(big, a, realtime=True), NativeCompositor(big, a)
    assert live.size[0] * live.size[1] > CUBIC_MAX_PX
    assert (live.interp, file.interp) == (cv2.INTER_LINEAR, cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(CROP_SIZE, dtype=np.float32), np.arange(CROP_SIZE, dtype=np.float32))
    mx, my = gx + 0.07, gy - 0.05  # about half a photo pixel at this size
    x0, y0, x1, y1 = file.box

    def energy(x: np.ndarray) -> float:
        return float((cv2.Laplacian(cv2.cvtColor(x[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), cv2.CV_32F) ** 2).mean())

    assert energy(file(mx, my, None)) > 1.15 * energy(live(mx, my, None))


def test_paste_back_changes_only_the_face(face_path):
    image = load_image(face_path)
    face = select_face(detect_faces(image))
    crop, a = align_face(image, face.landmarks)
    grid = np.meshgrid(np.arange(CROP_SIZE, dtype=np.float32), np.arange(CROP_SIZE, dtype=np.float32))
    out = NativeCompositor(image, a)(*grid, np.full((128, 128, 3), -255.0))  # a change that paints it all black
    mouth = face.landmarks[48:68].mean(0).astype(int)
    assert out[mouth[1], mouth[0]].max() < 10  # the face's centre was painted
    changed = np.abs(out.astype(int) - image).sum(-1) > 0
    corners = a.to_image(np.array([[0, 0], [0, CROP_SIZE], [CROP_SIZE, CROP_SIZE], [CROP_SIZE, 0]], float))
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    outside = changed.copy()
    outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
    assert not outside.any()


def test_feather_mask_is_smooth():
    m = feather_mask()
    assert m[CROP_SIZE // 2, CROP_SIZE // 2] == 1.0 and m[0, 0] == 0.0
    assert np.abs(np.diff(m, axis=0)).max() < 0.1


def test_large_photo_is_downscaled_without_aliasing(face_path):
    import cv2

    image = cv2.resize(load_image(face_path), (1280, 1280), interpolation=cv2.INTER_CUBIC)
    check_align_round_trip(image, "astronaut 1280")


def test_no_face():
    rng = np.random.default_rng(0)
    noise = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    with pytest.raises(NoFaceFoundError, match="no face"):
        select_face(detect_faces(noise), name="noise")


def test_several_faces_need_a_choice(face_path):
    import cv2

    img = load_image(face_path)
    pair = np.concatenate([img, cv2.flip(img, 1)], axis=1)
    faces = detect_faces(pair)
    assert len(faces) == 2
    with pytest.raises(AmbiguousFaceError, match="--face-index"):
        select_face(faces)
    assert select_face(faces, 1) is faces[1]
    with pytest.raises(FaceIndexError):
        select_face(faces, 2)
    # A clearly dominant face is chosen without asking.
    big = cv2.resize(img, (400, 400), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(cv2.flip(img, 1), (240, 240), interpolation=cv2.INTER_AREA)
    canvas = np.concatenate([big, np.pad(small, ((0, 160), (0, 0), (0, 0)))], axis=1)
    faces = detect_faces(canvas)
    assert len(faces) == 2 and select_face(faces) is faces[0]


def test_embedding_separates_people_and_matches_the_same(face_path):
    import cv2

    img = load_image(face_path)
    f = select_face(detect_faces(img))
    e1 = face_embedding(img, f.landmarks)
    shifted = cv2.warpAffine(
        img, np.float32([[1, 0, 7], [0, 1, -5]]), img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE
    )
    e2 = face_embedding(shifted, select_face(detect_faces(shifted)).landmarks)
    assert e1.shape == (128,) and np.linalg.norm(e1 - e2) < 0.2


def test_mouth_opening_of_a_closed_mouth_is_small(face_path):
    img = load_image(face_path)
    assert mouth_opening(select_face(detect_faces(img)).landmarks) < 0.15


@pytest.mark.shared_data
def test_every_eval_portrait_aligns_and_pastes_back():
    folder = shared("eval", "portraits")
    paths = sorted(folder.iterdir())
    assert len(paths) >= 18
    for p in paths:
        check_align_round_trip(load_image(p), p.name)


@pytest.mark.shared_data
@pytest.mark.slow
def test_at_least_95_percent_of_training_faces_align():
    folder = shared("train", "faces")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    ok, failed = 0, []
    for p in paths:
        try:
            image = load_image(p)
            faces = detect_faces(image)
            face = faces[0] if faces else None  # several faces: the largest, as with --face-index 0
            if face is not None:
                align_face(image, face.landmarks)
                ok += 1
            else:
                failed.append(p.name)
        except Exception as e:  # noqa: BLE001 - any failure counts against the rate
            failed.append(f"{p.name}: {e}")
    assert ok / len(paths) >= 0.95, failed


def test_strided_frames_are_accepted(face_path):
    """Decoded video frames of some widths are views with padded rows; dlib needs contiguous arrays."""
    img = load_image(face_path)
    padded = np.zeros((img.shape[0], img.shape[1] + 10, 3), np.uint8)
    padded[:, : img.shape[1]] = img
    view = padded[:, : img.shape[1]]
    assert not view.flags.c_contiguous
    face = select_face(detect_faces(view))
    assert face_embedding(view, face.landmarks).shape == (128,)
    # The fast detector alone (the metrics' tracker has no slow fallback) finds the same face whatever the padding:
    # dlib read such views with the wrong row stride and missed the face on paddings of 3 and 10 px (session 16)
    want = detect_boxes(img, cnn_fallback=False)
    for pad in (3, 7, 10):
        padded = np.zeros((img.shape[0], img.shape[1] + pad, 3), np.uint8)
        padded[:, : img.shape[1]] = img
        assert detect_boxes(padded[:, : img.shape[1]], cnn_fallback=False) == want, pad


def test_a_black_and_white_photo_stays_grey(face_path):
    """The refiner was trained on colour video: on a grey photo its change is added as grey, so no tint appears
    (eval p05: green and purple lip corners before); a colour photo keeps the change's colour."""
    colour = load_image(face_path)
    grey = np.repeat(colour.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    grid = np.meshgrid(np.arange(CROP_SIZE, dtype=np.float32), np.arange(CROP_SIZE, dtype=np.float32))
    tint = np.zeros((128, 128, 3))
    tint[60:100, 40:90] = (40.0, -20.0, -20.0)  # a reddish mouth patch
    for image, want_grey in ((grey, True), (colour, False)):
        face = select_face(detect_faces(image))
        _, a = align_face(image, face.landmarks)
        comp = NativeCompositor(image, a)
        assert comp.grey == want_grey
        out = comp(*grid, tint).astype(int)
        spread = np.ptp(out, axis=2).max()
        assert (spread <= 1) if want_grey else (spread > 30)
