"""What a viewer sees, measured on every frame: broken frames, lost detail, shifted colour.

- *temporal spikes*: the face region (the clip's median face box, grey, 128²) of frame t against the pixelwise
  median of frames t-3..t+3; a spike is a frame whose mean absolute difference exceeds 4x the clip's median of
  that quantity and 10 grey levels. Real talking clips give none; a warp that folds at a blink gives two per blink.
- *detail*: the upper face (eye corners, brows, nose; regions nothing needs to repaint), aligned on the eyes and
  scaled so that the inter-ocular distance is 128 px, against the same patch of the portrait: the ratio of the
  variances of the Laplacian, and the colour difference (CIE76 ΔE of the patches' mean Lab).
- a contact sheet per clip (a strip of frames with the spike and blink frames, and mouth crops at full
  resolution), for a person to look at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parla.errors import require
from parla.face import landmarks as L

FACE_PX = 128  # the face region is compared at this size
SPIKE_HALF = 3  # frames on each side of the temporal median
SPIKE_RATIO = 4.0  # x the clip's median difference...
SPIKE_MIN_GREY = 10.0  # ...and at least this many grey levels
DETAIL_IOD = 128.0  # px: inter-ocular distance of the detail patch
UPPER = [17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, *range(36, 48)]  # brows, nose, eyes


def face_box(landmarks: np.ndarray) -> tuple[int, int, int, int] | None:
    """The clip's median face box (x0, y0, x1, y1) from its landmark track (NaN rows: no face)."""
    ok = ~np.isnan(landmarks[:, 0, 0])
    if not ok.any():
        return None
    lo, hi = np.median(landmarks[ok].min(1), 0), np.median(landmarks[ok].max(1), 0)
    return int(lo[0]), int(lo[1]), int(np.ceil(hi[0])), int(np.ceil(hi[1]))


def face_region(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(FACE_PX, FACE_PX) float32 grey of the box."""
    cv2 = require("cv2", "core")
    x0, y0, x1, y1 = box
    h, w = frame.shape[:2]
    crop = frame[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (FACE_PX, FACE_PX), interpolation=cv2.INTER_AREA).astype(np.float32)


def temporal_spikes(faces: np.ndarray) -> dict[str, Any]:
    """Spike frames of a (T, FACE_PX, FACE_PX) stack; the first and last SPIKE_HALF frames are not judged."""
    n = len(faces)
    d = np.full(n, np.nan)
    for t in range(SPIKE_HALF, n - SPIKE_HALF):
        ref = np.median(faces[t - SPIKE_HALF : t + SPIKE_HALF + 1], axis=0)
        d[t] = float(np.abs(faces[t] - ref).mean())
    ok = ~np.isnan(d)
    if not ok.any():
        return {"spikes": None, "spike_frames": [], "spike_diff_median": None, "spike_diff_max": None}
    med = float(np.median(d[ok]))
    frames = [int(t) for t in np.flatnonzero(ok & (d > SPIKE_RATIO * med) & (d > SPIKE_MIN_GREY))]
    return {
        "spikes": len(frames),
        "spike_frames": frames,
        "spike_diff_median": round(med, 3),
        "spike_diff_max": round(float(np.nanmax(d)), 3),
    }


@dataclass
class DetailPatch:
    """Where the upper-face patch lies in the eye-aligned frame at DETAIL_IOD (fixed by the portrait)."""

    box: tuple[int, int, int, int]

    @classmethod
    def of_portrait(cls, landmarks: np.ndarray) -> DetailPatch:
        p = _aligned_points(landmarks)[UPPER]
        lo, hi = np.floor(p.min(0)).astype(int) - 4, np.ceil(p.max(0)).astype(int) + 4
        return cls((int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])))

    def cut(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The patch of ``image`` (RGB uint8) whose face has ``landmarks``: area-downscaled first when the face is
        larger than DETAIL_IOD (no aliasing), then rotated and shifted onto the patch."""
        cv2 = require("cv2", "core")
        scale = DETAIL_IOD / float(L.interocular(landmarks[None])[0])
        lm = landmarks.astype(np.float64)
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            lm = lm * scale
            scale = 1.0
        m = _eye_similarity(lm, scale)
        x0, y0, x1, y1 = self.box
        m[:, 2] -= (x0, y0)
        return cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _eye_similarity(lm: np.ndarray, scale: float) -> np.ndarray:
    """2x3 similarity: eye line level, eye centres at (0, 0) and (DETAIL_IOD, 0) after ``scale``."""
    le, re = L.eye_centres(lm[None])
    le, re = le[0], re[0]
    v = re - le
    c, s = v / np.linalg.norm(v) * scale
    rot = np.array([[c, s], [-s, c]])
    return np.concatenate([rot, (-rot @ le)[:, None]], 1)


def _aligned_points(landmarks: np.ndarray) -> np.ndarray:
    m = _eye_similarity(landmarks.astype(np.float64), DETAIL_IOD / float(L.interocular(landmarks[None])[0]))
    return landmarks @ m[:, :2].T + m[:, 2]


def laplacian_var(patch: np.ndarray) -> float:
    cv2 = require("cv2", "core")
    grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def mean_lab(patch: np.ndarray) -> np.ndarray:
    cv2 = require("cv2", "core")
    return cv2.cvtColor(patch.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)


def mouth_chroma(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """95th percentile of the CIE chroma (√(a² + b²)) over the mouth crop: a grey photo's mouth stays near 0, and
    colour painted into it (a tinted mouth interior, blue lip corners) shows."""
    cv2 = require("cv2", "core")
    crop = _mouth_crop(frame, landmarks)
    if crop.size == 0:
        return float("nan")
    lab = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return float(np.percentile(np.hypot(lab[:, 1], lab[:, 2]), 95))


class Reference:
    """The portrait's upper-face patch and mouth: what every frame's detail and colour are compared with."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        self.patch_box = DetailPatch.of_portrait(landmarks)
        patch = self.patch_box.cut(image, landmarks)
        self.var, self.lab = laplacian_var(patch), mean_lab(patch)
        self.chroma = mouth_chroma(image, landmarks)

    def compare(self, frame: np.ndarray, landmarks: np.ndarray) -> tuple[float, float, float]:
        """(detail ratio, ΔE, mouth chroma above the portrait's) of one frame."""
        patch = self.patch_box.cut(frame, landmarks)
        detail = laplacian_var(patch) / max(self.var, 1e-9)
        return detail, float(np.linalg.norm(mean_lab(patch) - self.lab)), mouth_chroma(frame, landmarks) - self.chroma


def frame_metrics(video: str | os.PathLike, landmarks: np.ndarray, reference: Reference | None) -> dict[str, Any]:
    """Spikes over every frame and, with a reference, the detail ratio and ΔE of every frame with a face."""
    from parla.media.video import iter_frames

    box = face_box(landmarks)
    out: dict[str, Any] = {
        "spikes": None,
        "spike_frames": [],
        "detail_median": None,
        "detail_min": None,
        "delta_e_median": None,
        "mouth_chroma_excess_p95": None,
    }
    if box is None:
        return out
    faces, detail, de, chroma = [], [], [], []
    for i, (_, frame) in enumerate(iter_frames(video)):
        faces.append(face_region(frame, box))
        lm = landmarks[i] if i < len(landmarks) else None
        if reference is not None and lm is not None and not np.isnan(lm[0, 0]):
            r, e, c = reference.compare(frame, lm)
            detail.append(r)
            de.append(e)
            chroma.append(c)
    out.update(temporal_spikes(np.stack(faces)))
    if detail:
        out.update(
            detail_median=round(float(np.median(detail)), 4),
            detail_min=round(float(np.min(detail)), 4),
            delta_e_median=round(float(np.median(de)), 3),
            mouth_chroma_excess_p95=round(float(np.nanpercentile(chroma, 95)), 2),
        )
    return out


def contact_sheet(
    video: str | os.PathLike,
    landmarks: np.ndarray,
    out: str | os.PathLike,
    *,
    spike_frames: list[int] = (),
    n: int = 8,
    strip_height: int = 256,
) -> Path:
    """A PNG for a person to look at: a strip of ``n`` evenly spaced frames, then the spike frames and the two
    frames with the most closed eyes (the blinks), each labelled with its index, then the mouth of ``n`` frames
    at the video's full resolution."""
    from parla.files import atomic_output
    from parla.media.video import iter_frames

    cv2 = require("cv2", "core")
    total = len(landmarks)
    ok = ~np.isnan(landmarks[:, 0, 0])
    even = [int(i) for i in np.linspace(0, total - 1, n).round()]
    ear = np.where(ok, L.eye_aspect_ratio(np.nan_to_num(landmarks)), np.inf)
    blinks = [int(i) for i in np.argsort(ear)[:2] if np.isfinite(ear[i])]
    special = sorted(set(spike_frames) | set(blinks))
    mouths = [i for i in even if ok[i]]
    want = set(even) | set(special)
    frames: dict[int, np.ndarray] = {}
    for i, (_, frame) in enumerate(iter_frames(video)):
        if i in want:
            frames[i] = frame
    rows = [_strip([(i, frames[i]) for i in even if i in frames], strip_height)]
    if special:
        labels = [(i, frames[i], "spike" if i in spike_frames else "eyes closed") for i in special if i in frames]
        rows.append(_strip([(i, f) for i, f, _ in labels], strip_height, [t for _, _, t in labels]))
    crops = [(i, _mouth_crop(frames[i], landmarks[i])) for i in mouths if i in frames]
    if crops:
        rows.append(_strip(crops, max(c.shape[0] for _, c in crops)))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    out = Path(out)
    with atomic_output(out) as tmp:
        ok_write, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        tmp.write_bytes(buf.tobytes())
    return out


def _mouth_crop(frame: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The mouth at the frame's own resolution: a square 1.6x the mouth's width around its centre."""
    c = lm[48:68].mean(0)
    half = int(0.8 * (lm[48:68, 0].max() - lm[48:68, 0].min())) + 4
    x0, y0 = max(0, int(c[0]) - half), max(0, int(c[1]) - half)
    return np.ascontiguousarray(frame[y0 : int(c[1]) + half, x0 : int(c[0]) + half])


def _strip(items: list[tuple[int, np.ndarray]], height: int, labels: list[str] | None = None) -> np.ndarray:
    cv2 = require("cv2", "core")
    tiles = []
    for k, (i, img) in enumerate(items):
        if img.shape[0] != height:
            scale = height / img.shape[0]
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST  # mouth crops: pixels as they are
            img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), height), interpolation=interp)
        img = np.ascontiguousarray(img)
        text = f"{i}" + (f" {labels[k]}" if labels else "")
        cv2.putText(img, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        tiles += [img, np.full((height, 4, 3), 255, np.uint8)]
    return np.concatenate(tiles, 1) if tiles else np.full((height, 1, 3), 255, np.uint8)
