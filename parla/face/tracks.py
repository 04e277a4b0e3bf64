"""Per-frame face tracks of a video: 68 landmarks per frame (NaN where no face), plus sampled identity embeddings.

Tracking: after the first full-frame detection, each frame is searched by the HOG detector in a window around
the previous face, rescaled so the face is ~120 px wide (fast and scale-independent); a full-frame search runs
only when the window search fails. The landmark model is then fitted at full resolution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.audio.io import load_audio
from parla.errors import InputFileError, require
from parla.face import detect
from parla.face.landmarks import interocular
from parla.media.video import VIDEO_SUFFIXES, iter_frames, probe_video
from parla.progress import progress as progress_bar

ROI_FACE_PX = 120  # px: face width the ROI search is rescaled to
ROI_MARGIN = 0.6  # fraction of the face width added on each side of the previous box


@dataclass
class FaceTrack:
    fps: float
    width: int
    height: int
    landmarks: np.ndarray  # (T, 68, 2) float32, NaN for frames without a face
    embeddings: np.ndarray  # (K, 128) float32 for K sampled frames with a face (may be empty)

    @property
    def n_frames(self) -> int:
        return len(self.landmarks)

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])


def _roi_detect(frame: np.ndarray, prev_box: tuple[float, ...]) -> tuple[float, ...] | None:
    cv2 = require("cv2", "core")
    x0, y0, x1, y1 = prev_box
    w = max(x1 - x0, 8.0)
    rx0, ry0 = int(max(0, x0 - ROI_MARGIN * w)), int(max(0, y0 - ROI_MARGIN * w))
    rx1, ry1 = int(min(frame.shape[1], x1 + ROI_MARGIN * w)), int(min(frame.shape[0], y1 + ROI_MARGIN * w))
    if rx1 - rx0 < 16 or ry1 - ry0 < 16:
        return None
    scale = ROI_FACE_PX / w
    roi = cv2.resize(frame[ry0:ry1, rx0:rx1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rects, _, _ = detect._models()["hog"].run(roi, 0, -0.3)
    if not rects:
        return None
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def to_image(r) -> tuple[float, ...]:
        return (rx0 + r.left() / scale, ry0 + r.top() / scale, rx0 + r.right() / scale, ry0 + r.bottom() / scale)

    boxes = [to_image(r) for r in rects]
    return min(boxes, key=lambda b: ((b[0] + b[2]) / 2 - cx) ** 2 + ((b[1] + b[3]) / 2 - cy) ** 2)


REDETECT_EVERY = 25  # frames: how often the detector re-checks a face followed by its own landmarks
# ... and the mean landmark distance (inter-ocular distances) between the followed fit and the detector box's fit
# above which the follower starts again from a whole-frame detection (eval p16: 0.01-0.04 tracking, 0.06-0.09 drifted)
DRIFT_IOD = 0.05
# A followed fit whose inter-ocular distance is this far (a fraction) from the last detection's is re-detected
SCALE_JUMP = 0.15


def _bbox(lm: np.ndarray) -> np.ndarray:
    return np.concatenate([lm.min(0), lm.max(0)]).astype(np.float64)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class _Follower:
    """Follows one face: the landmark fit of frame t places the box for frame t + 1.

    The box is the previous landmarks' bounding box mapped by the offset that the last real detection had
    from its own landmarks, so the landmark model always sees boxes of the detector's convention. This is
    steadier than re-detecting every frame (detector boxes jitter by several pixels), and a periodic
    detection in a window catches a lost face.
    """

    def __init__(self) -> None:
        self.lm: np.ndarray | None = None
        self.rel = np.zeros(4)
        self.size = np.ones(2)  # the landmarks' extent at the last detection: the box keeps it between detections
        self.iod = 1.0  # ... and their inter-ocular distance
        self.since_detect = 0

    def _detect(self, frame: np.ndarray) -> tuple[float, ...] | None:
        found = _roi_detect(frame, tuple(self.box())) if self.lm is not None else None
        if found is None:
            boxes = detect.detect_boxes(frame, cnn_fallback=False)
            found = boxes[0][0] if boxes else None
        return found

    def box(self) -> np.ndarray:
        """Centred on the last landmarks, as large as at the last detection. (Sized by the last landmarks, a fit a
        little small gave a smaller box, a smaller fit, ...: eval p03's track shrank from an inter-ocular distance
        of 106 px to 61 px in 8 frames between two checks, on frames where the face had not moved.)"""
        b = _bbox(self.lm)
        centre = (b[:2] + b[2:]) / 2
        return np.concatenate([centre - self.size / 2, centre + self.size / 2]) + self.rel * np.tile(self.size, 2)

    def _start(self, found: tuple[float, ...], lm: np.ndarray) -> np.ndarray:
        """Landmarks fitted in a detector box; the box's offset from them places the next frames' boxes."""
        b = _bbox(lm)
        self.size = np.maximum(b[2:] - b[:2], 1.0)
        self.rel = (np.asarray(found) - b) / np.tile(self.size, 2)
        self.iod = float(interocular(lm))
        return lm

    def _restart(self, frame: np.ndarray, found=None, fresh: np.ndarray | None = None) -> np.ndarray | None:
        """Start again from the whole frame's detection or, where the detector misses this face on this frame
        (eval p03: on 15 frames in a row), from ``found`` (default: a search near the last landmarks), with its
        landmarks ``fresh`` when already fitted; None where neither finds a face."""
        boxes = detect.detect_boxes(frame, cnn_fallback=False)
        if boxes:
            return self._start(boxes[0][0], detect.fit_landmarks(frame, boxes[0][0]))
        if found is None:
            found = _roi_detect(frame, tuple(self.box()))
        if found is None:
            return None
        return self._start(found, detect.fit_landmarks(frame, found) if fresh is None else fresh)

    def step(self, frame: np.ndarray) -> np.ndarray | None:
        lm = None
        if self.lm is not None and self.since_detect >= REDETECT_EVERY:
            # A check, not a re-initialisation: replacing a good box would step the landmarks. But a followed box
            # can hold landmarks that slid off the features while it still overlaps the detector's (eval p16: the
            # eyes on the glasses' lower rims for 125 frames, read as 120 blinks a minute), so the landmarks of
            # both boxes are compared, and where they disagree the follower starts again.
            found, self.since_detect = self._detect(frame), 0
            if found is None or _iou(found, self.box()) < 0.5:
                self.lm = None
            else:
                lm = detect.fit_landmarks(frame, tuple(self.box()))
                fresh = detect.fit_landmarks(frame, found)
                if np.linalg.norm(fresh - lm, axis=1).mean() > DRIFT_IOD * float(interocular(fresh)):
                    lm = self._restart(frame, found, fresh)
        if lm is None and self.lm is None:
            found = self._detect(frame)
            self.since_detect = 0
            if found is None:
                return None
            lm = self._start(found, detect.fit_landmarks(frame, found))
        elif lm is None:
            lm = detect.fit_landmarks(frame, tuple(self.box()))
            if abs(float(interocular(lm)) / self.iod - 1.0) > SCALE_JUMP:
                # the fit lost the face's scale in a box of the right size (eval p03: 106 -> 63 px in 3 frames
                # with the face still): detect again; a frame the detector cannot read is left unread
                self.since_detect = 0
                lm = self._restart(frame)
                if lm is None:
                    return None  # the next frame is fitted from the last good landmarks
        self.since_detect += 1
        self.lm = lm
        return lm


def track_video(path: str | os.PathLike, *, n_embeddings: int = 0, progress: bool = False) -> FaceTrack:
    """Landmarks for every frame of ``path``; ``n_embeddings`` evenly spaced frames also get an identity embedding."""
    info = probe_video(path)
    embed_at = (
        set(np.linspace(0, max(info.n_frames - 1, 0), n_embeddings).round().astype(int).tolist())
        if n_embeddings
        else set()
    )
    rows: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    follower = _Follower()
    bar = progress_bar(info.n_frames, f"tracking {info.path.name}", enabled=progress, unit="frame")
    for i, (_, frame) in enumerate(iter_frames(path)):
        lm = follower.step(frame)
        rows.append(np.full((68, 2), np.nan, np.float32) if lm is None else lm)
        if lm is not None and i in embed_at:
            embeddings.append(detect.face_embedding(frame, lm))
        bar.update(1)
    bar.close()
    lms = np.stack(rows) if rows else np.zeros((0, 68, 2), np.float32)
    emb = np.stack(embeddings) if embeddings else np.zeros((0, 128), np.float32)
    return FaceTrack(info.fps, info.width, info.height, lms, emb)


def sidecar_audio(video: Path) -> Path | None:
    """A ``.wav`` beside the video with the same stem carries its audio (used instead of the video's track)."""
    wav = video.with_suffix(".wav")
    return wav if wav.is_file() else None


def clip_audio(video: Path, audio: Path | None) -> tuple[np.ndarray | None, str | None]:
    source = audio or sidecar_audio(video)
    if source is not None:
        return load_audio(source, allow_silent=True), str(source)
    if probe_video(video).has_audio:
        return load_audio(video, allow_silent=True), "track"
    return None, None


def list_videos(folder: str | os.PathLike) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise InputFileError(f"{d}: not a directory of videos")
    videos = sorted(p for p in d.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
    if not videos:
        raise InputFileError(f"{d}: holds no video files ({', '.join(VIDEO_SUFFIXES)})")
    return videos
