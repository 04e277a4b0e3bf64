"""The frame renderer: one frame's motion -> the finished frame at the photo's resolution.

    driving landmarks -> host warp -> refiner on a backend -> compose -> paste-back -> frame stages (watermark)

The one renderer of every path (offline, streaming, bench, evaluation, distillation samples). numpy + OpenCV +
whichever backend runs the refiner; each stage is timed.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable

import numpy as np

from parla.errors import require
from parla.face.portrait import Portrait

FrameStage = Callable[[np.ndarray, int], np.ndarray]
STAGES = ("audio_features", "motion", "warp", "refiner", "paste_back")


class StageTimer:
    """Per-stage wall times (ms) over the last ``keep`` frames: bounded however long the stream runs."""

    def __init__(self, keep: int = 4096) -> None:
        self.times: dict[str, deque] = defaultdict(lambda: deque(maxlen=keep))

    def add(self, stage: str, ms: float) -> None:
        self.times[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            k: {f"p{q}": round(float(np.percentile(v, q)), 3) for q in (50, 95, 99)} for k, v in self.times.items() if v
        }


def to_input(warped_lr: np.ndarray, source_lr: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """(r, r, 3) uint8 x2 + (C, r, r) float -> the refiner's input (1, 3 + 3 + C, r, r) float32."""
    imgs = [a.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0 for a in (warped_lr, source_lr)]
    return np.concatenate(imgs + [cond.astype(np.float32)])[None]


def compose(warped: np.ndarray, x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """warped (S, S, 3) uint8 full-res crop, x (9, r, r) refiner input, y (4, r, r) its output -> (S, S, 3) uint8;
    the arithmetic of ``parla.models.refiner.compose`` (bilinear, half-pixel centres) without torch."""
    cv2 = require("cv2", "core")
    size = (warped.shape[1], warped.shape[0])
    rgb = y[:3].transpose(1, 2, 0)
    if mode == "full":
        out = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    else:
        delta = y[3:4].transpose(1, 2, 0) * (rgb - x[:3].transpose(1, 2, 0))
        out = warped.astype(np.float32) / 127.5 - 1.0 + cv2.resize(delta, size, interpolation=cv2.INTER_LINEAR)
    return ((np.clip(out, -1, 1) + 1) * 127.5 + 0.5).astype(np.uint8)


class FrameRenderer:
    """One frame's motion -> the finished frame at the photo's resolution: the warp applied to the photo itself,
    the refiner's change added where it paints (mouth, lips, eyelids), then the frame stages (watermark)."""

    def __init__(
        self, portrait: Portrait, basis, refiner, stages=(), timer: StageTimer | None = None, *, realtime: bool = False
    ) -> None:
        from parla.face.composite import NativeCompositor
        from parla.face.mouth import gap

        self.portrait, self.basis, self.refiner = portrait, basis, refiner
        self.mode = refiner.refiner_config.get("mode", "residual_mask")
        self.res = int(refiner.input_shape[-1])
        self.stages = list(stages)
        self.timer = timer or StageTimer()
        self.composite = NativeCompositor(
            portrait.image, portrait.alignment, copies=tuple(m.image for m in portrait.mouths), realtime=realtime
        )
        self.gaps = (gap(portrait.landmarks), *(m.gap for m in portrait.mouths))
        self.opened = tuple(g > self.gaps[0] for g in self.gaps)  # index 0 (the photo) is never an opened copy

    def render(self, fm) -> np.ndarray:
        from parla.face.composite import mouth_inside, paint_region
        from parla.face.mouth import localize, source_weights
        from parla.face.warp import condition_maps, downsize, remap, tps_grids, upsample

        p, t0 = self.portrait, time.perf_counter()
        drv = self.basis.drive(p.landmarks, fm.coeffs, fm.pose, fm.blink, fm.mouth_close, fm.mouth_rest)
        size = p.crop.shape[0]
        # a driving gap the photo cannot be warped to (lips apart in the photo and closing, or together and
        # opening): warp a lip copy with a gap nearer it (two blended at hand-overs),
        # by its own map at the mouth and the photo's everywhere else; the spline is solved once for all of them
        chosen = source_weights(self.gaps, drv) if p.mouths else [(0, 1.0)]
        used = [p] + [p.mouths[i - 1] for i, _ in chosen if i]
        grids = tps_grids([s.landmarks.astype(np.float64) for s in used], drv.astype(np.float64), size)
        photo_map = upsample(grids[0], size)
        sources, w_lr, source_lr = [], None, None
        for i, weight in chosen:
            src = p if i == 0 else p.mouths[i - 1]  # both have crop, landmarks, source_lr
            mx, my = photo_map if i == 0 else localize(grids[used.index(src)], photo_map, p.mouths[i - 1].box)
            lo = downsize(remap(src.crop, mx, my), self.res)
            sources.append((i, mx, my, weight))
            w_lr = lo if w_lr is None else _mix(w_lr, lo, weight)
            source_lr = src.source_lr if source_lr is None else _mix(source_lr, src.source_lr, weight)
        assert w_lr is not None and source_lr is not None  # ``chosen`` is never empty
        cond = condition_maps(drv, self.res, size)
        x = to_input(w_lr, source_lr, cond)
        t1 = time.perf_counter()
        y = self.refiner.run(x)[0]
        t2 = time.perf_counter()
        change = y[:3] - x[0, :3] if self.mode == "full" else y[3:4] * (y[:3] - x[0, :3])
        region = paint_region(drv, self.res, p.crop.shape[0])
        opened = sum(weight for i, weight in chosen if self.opened[i])
        if opened > 0:  # the lips part onto an opened copy's painted inside: the refiner leaves it as it is
            region = region * (1.0 - opened * mouth_inside(drv, self.res, p.crop.shape[0]))
        frame = self.composite.sources(sources, change.transpose(1, 2, 0) * (127.5 * region[..., None]))
        for stage in self.stages:
            frame = stage(frame, fm.index)
        self.timer.add("warp", (t1 - t0) * 1e3)
        self.timer.add("refiner", (t2 - t1) * 1e3)
        self.timer.add("paste_back", (time.perf_counter() - t2) * 1e3)
        return frame


def _mix(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    cv2 = require("cv2", "core")
    return cv2.addWeighted(a, 1.0 - weight, b, weight, 0.0)


def content_credentials(metadata: dict[str, str], enabled: bool, *, live: bool = False):
    """The C2PA claims for a generated file (``parla.media.credentials``), or None: turned off (logged, like the
    watermark) or c2pa-python not installed (said once per file). The signing key is checked here, before the work
    (``check_signing``)."""
    from parla.media.credentials import Claims, available, check_signing, warn_unavailable

    if not enabled:
        logging.getLogger("parla").warning("Content Credentials are OFF for this output (--no-credentials)")
        return None
    if not available():
        warn_unavailable()
        return None
    check_signing()  # before the work: a key that cannot sign fails now, not after the last frame
    return Claims.from_metadata(metadata, live=live)


def provenance(version: str, *, watermark: bool, badge: bool) -> tuple[list[FrameStage], dict[str, str]]:
    """The frame stages and mp4 tags of a generated video: the invisible mark unless explicitly turned off
    (logged), an optional visible badge, and tags naming the generator, model version and watermark id."""
    from parla import __version__
    from parla.watermark import Watermarker, draw_badge

    stages: list[FrameStage] = []
    mark = "off"
    if watermark:
        wm = Watermarker(version)
        stages.append(wm)
        mark = wm.tag
    else:
        logging.getLogger("parla").warning("the invisible watermark is OFF for this video (--no-watermark)")
    if badge:
        stages.append(lambda frame, i: draw_badge(frame))
    meta = {
        "comment": f"generated by Parla {__version__} (synthetic talking face); model {version}; watermark {mark}",
        "encoder": "parla",
        "parla_generator": "Parla",
        "parla_version": __version__,
        "parla_model": version,
        "parla_watermark": mark,
        "creation_time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }
    return stages, meta
