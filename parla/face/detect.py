"""Face detection, 68-point landmarks and a 128-d identity embedding, all from dlib's offline models.

The weights come inside the ``face-recognition-models`` wheel (no download). That package imports
``pkg_resources`` at import time, so its files are located with importlib instead of importing it.
Detection runs the HOG detector on a downscaled copy (fast), then falls back to dlib's CNN (MMOD) detector,
which also finds 3/4 views and faces in old photos. Landmarks are fitted on the full-resolution image.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.errors import AmbiguousFaceError, FaceIndexError, MissingDependencyError, NoFaceFoundError, require

DETECT_MAX_SIDE = 800  # px: HOG runs on a copy no larger than this
SMALL_IMAGE_SIDE = 640  # px: at most this large, HOG always runs on the 2x upsampled image
CNN_MAX_SIDE = 640  # px: the CNN fallback costs ~1 s at this size on 2 cores
WEAK_SCORE_RATIO = 0.25  # detections scoring below this fraction of the best one are dropped
AMBIGUOUS_AREA_RATIO = 0.7  # a second face this close in size to the largest makes the choice ambiguous


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    landmarks: np.ndarray  # (68, 2) float32, image pixels
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def _model_path(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "the face models are missing; install them with: pip install face-recognition-models"
        )
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise MissingDependencyError(f"face model file {path} is missing; reinstall face-recognition-models")
    return path


@functools.lru_cache(maxsize=1)
def _models():
    dlib = require("dlib", "core")
    return {
        "dlib": dlib,
        "hog": dlib.get_frontal_face_detector(),
        "shape": dlib.shape_predictor(str(_model_path("shape_predictor_68_face_landmarks.dat"))),
    }


@functools.lru_cache(maxsize=1)
def _cnn():
    dlib = _models()["dlib"]
    return dlib.cnn_face_detection_model_v1(str(_model_path("mmod_human_face_detector.dat")))


@functools.lru_cache(maxsize=1)
def _embedder():
    dlib = _models()["dlib"]
    return dlib.face_recognition_model_v1(str(_model_path("dlib_face_recognition_resnet_model_v1.dat")))


def release() -> None:
    """Free the face models: the landmark model alone holds 70 MB, which a running avatar, its portrait built,
    never uses again. They load again on the next detection (0.7 s)."""
    import gc

    for cached in (_models, _cnn, _embedder):
        cached.cache_clear()
    gc.collect()
    try:  # dlib's model is many small blocks: glibc keeps them in the heap unless asked to hand them back
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _resize_max(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    cv2 = require("cv2", "core")
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def detect_boxes(image: np.ndarray, *, cnn_fallback: bool = True) -> list[tuple[tuple[float, ...], float]]:
    """Face boxes ``((x0, y0, x1, y1), score)`` in image pixels, largest first."""
    m = _models()
    # dlib's detectors ignore a view's row stride: on a decoded video frame with padded rows they miss the face
    small, scale = _resize_max(np.ascontiguousarray(image), DETECT_MAX_SIDE)
    found: list[tuple[tuple[float, ...], float]] = []
    # Upsampling finds faces down to ~40 px; on small images it is cheap enough to always do.
    for upsample in (1,) if max(small.shape[:2]) <= SMALL_IMAGE_SIDE else (0, 1):
        rects, scores, _ = m["hog"].run(small, upsample, 0.0)
        found = [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores, strict=True)]
        if found:
            break
    if not found and cnn_fallback:
        import sys

        from parla.progress import progress

        small, scale = _resize_max(np.ascontiguousarray(image), CNN_MAX_SIDE)
        # up to ~15 s on 2 cores when there is no face at all: say so where someone is watching
        with progress(2, "no face at first look; trying the slower detector", enabled=sys.stderr.isatty(),
                      unit="pass") as bar:  # fmt: skip
            for upsample in (0, 1):
                dets = _cnn()(small, upsample)
                bar.update(1)
                found = [
                    ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence)) for d in dets
                ]
                if found:
                    break
    if found:
        # Weak detections far below the best one are the detector's false positives, not faces to choose from.
        best = max(s for _, s in found)
        found = [(b, s) for b, s in found if s >= WEAK_SCORE_RATIO * best]
    boxes = [(tuple(v / scale for v in b), s) for b, s in found]
    return sorted(boxes, key=lambda bs: -(bs[0][2] - bs[0][0]) * (bs[0][3] - bs[0][1]))


def fit_landmarks(image: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """68 landmarks (float32, image pixels) inside ``box``."""
    m = _models()
    rect = m["dlib"].rectangle(*(int(round(v)) for v in box))
    shape = m["shape"](np.ascontiguousarray(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def detect_faces(image: np.ndarray) -> list[Detection]:
    """All faces in an RGB uint8 image, largest first."""
    return [Detection(box, fit_landmarks(image, box), score) for box, score in detect_boxes(image)]


def select_face(faces: list[Detection], index: int | None = None, *, name: str = "image") -> Detection:
    """The face to animate: ``index`` if given, else the largest unless another is nearly as large."""
    if not faces:
        raise NoFaceFoundError(f"{name}: no face found (a clear, roughly frontal face of 64 px or more is needed)")
    if index is not None:
        if not 0 <= index < len(faces):
            raise FaceIndexError(
                f"{name}: --face-index {index} is out of range: {len(faces)} face(s) found (0 = largest)"
            )
        return faces[index]
    if len(faces) > 1 and faces[1].area >= AMBIGUOUS_AREA_RATIO * faces[0].area:
        raise AmbiguousFaceError(
            f"{name}: {len(faces)} faces of similar size found; choose one with "
            f"--face-index 0..{len(faces) - 1} (0 = largest)"
        )
    return faces[0]


def face_embedding(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """128-d dlib ResNet identity embedding; same person when the L2 distance is below ~0.6."""
    m = _models()
    dlib = m["dlib"]
    pts = landmarks.astype(np.float64)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    # dlib's bindings reject strided arrays (decoded frames of some widths have padded rows).
    return np.asarray(_embedder().compute_face_descriptor(np.ascontiguousarray(image), shape), dtype=np.float32)
