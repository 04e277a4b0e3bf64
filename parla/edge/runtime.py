"""The per-frame work of the on-device runtime: open the configured models, and turn one frame's motion into a
finished frame (driving landmarks -> host warp -> refiner -> compose -> paste-back -> watermark), timing each
stage. numpy + OpenCV + one runtime; torch only for the ``torch`` backend."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.edge.config import BACKEND_FORMAT, RuntimeConfig
from parla.errors import ModelNotFoundError, require

STAGES = ("audio_features", "motion", "warp", "refiner", "paste_back")


def model_folder(cfg: RuntimeConfig) -> Path:
    """The model folder whose config.json (motion settings, basis) goes with the edge models."""
    from parla.edge.assets import _folder

    if cfg.model == "default":
        return _folder()
    p = Path(cfg.model)
    folder = p if p.is_dir() else p.parent
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"model: {cfg.model} is not a model folder (no config.json); use 'default' or a "
                                 "folder made by 'parla train bundle'")
    return folder


def open_models(cfg: RuntimeConfig, *, net: str = "student"):
    """(refiner backend, motion backend) on the configured backend and device, with the config's CPU fallback."""
    from parla.edge.backends.base import open_for_config

    folder = model_folder(cfg)
    if cfg.backend == "torch":
        import logging

        from parla.edge.backends.torch_backend import TorchBackend
        from parla.errors import ParlaError

        device = cfg.device
        try:
            refiner = TorchBackend(folder, device, cfg.threads, kind="refiner", net=net, precision=cfg.precision)
        except ParlaError as e:
            if not cfg.fallback_to_cpu or device == "cpu" or isinstance(e, ModelNotFoundError):
                raise
            logging.getLogger("parla").warning("%s; falling back to torch cpu (fallback_to_cpu: true)", e)
            device = "cpu"
            refiner = TorchBackend(folder, device, cfg.threads, kind="refiner", net=net, precision=cfg.precision)
        return refiner, TorchBackend(folder, device, cfg.threads, kind="motion", precision="fp32")
    from parla.export.formats import model_filename

    fmt = BACKEND_FORMAT[cfg.backend]
    paths = [folder / "edge" / model_filename(fmt, cfg.precision, "refiner"),
             folder / "edge" / model_filename(fmt, "fp32", "motion")]
    if cfg.model == "default":
        from parla.edge.assets import bundled_edge_model
        from parla.export.formats import BEST

        if cfg.precision != BEST[fmt]:
            raise ModelNotFoundError(f"precision: the bundled model ships {fmt} {BEST[fmt]} only; export "
                                     f"{cfg.precision} with 'parla export default --format {fmt} --precision "
                                     f"{cfg.precision} -o DIR' and point 'model:' at DIR")
        paths = [bundled_edge_model(fmt, "refiner"), bundled_edge_model(fmt, "motion")]
    elif Path(cfg.model).is_dir() and (Path(cfg.model) / paths[0].name).is_file():  # a 'parla export' folder
        paths = [Path(cfg.model) / paths[0].name, Path(cfg.model) / paths[1].name]
    for p in paths:
        if not p.is_file():
            raise ModelNotFoundError(f"{p}: missing; make it with 'parla export'")
    kw = {"threads": cfg.threads, "delegate": cfg.delegate, "fallback_to_cpu": cfg.fallback_to_cpu}
    refiner = open_for_config(paths[0], cfg.backend, cfg.device, **kw)
    motion_device = "CPU" if cfg.backend == "openvino" else "cpu"  # the motion net is FP32: CPU everywhere
    motion = open_for_config(paths[1], cfg.backend, motion_device, threads=cfg.threads)
    return refiner, motion


class StageTimer:
    """Per-stage wall times (ms) over the last ``keep`` frames: bounded however long the stream runs."""

    def __init__(self, keep: int = 4096) -> None:
        self.times: dict[str, deque] = defaultdict(lambda: deque(maxlen=keep))

    def add(self, stage: str, ms: float) -> None:
        self.times[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: {f"p{q}": round(float(np.percentile(v, q)), 3) for q in (50, 95, 99)}
                for k, v in self.times.items() if v}


@dataclass
class Face:
    """The portrait, prepared once: full image, aligned crop, its landmarks and the refiner-resolution crop."""

    image: np.ndarray
    crop: np.ndarray
    alignment: object
    landmarks: np.ndarray
    source_lr: np.ndarray


class Paster:
    """``parla.face.align.paste_back`` for one portrait, many frames: the footprint, the inverse transform and the
    feathered alpha are computed once; per frame the crop is warped into the footprint and blended in one OpenCV
    pass (a 1186x1080 portrait whose face fills the frame: 31 ms per frame with paste_back on 2 cores)."""

    def __init__(self, face: Face) -> None:
        from parla.face.align import feather_mask, footprint

        self.cv2 = cv2 = require("cv2", "core")
        self.image = face.image
        fp = footprint(face.image.shape, face.alignment)
        self.empty = fp is None
        if self.empty:
            return
        self.box, self.inv, self.size = fp
        x0, y0, x1, y1 = self.box
        self.alpha = cv2.warpAffine(feather_mask(face.alignment.size), self.inv, self.size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT)
        self.beta = (1.0 - self.alpha).astype(np.float32)
        self.bg = np.ascontiguousarray(face.image[y0:y1, x0:x1])

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        out = self.image.copy()
        if self.empty:
            return out
        x0, y0, x1, y1 = self.box
        cv2 = self.cv2
        patch = cv2.warpAffine(crop, self.inv, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = cv2.blendLinear(patch, self.bg, self.alpha, self.beta)  # one pass, rounded
        return out


class FrameRenderer:
    """One frame's motion -> the finished frame at the photo's resolution."""

    def __init__(self, face: Face, basis, refiner, mode: str, stages=(), timer: StageTimer | None = None) -> None:
        self.face, self.basis, self.refiner, self.mode = face, basis, refiner, mode
        self.res = int(refiner.input_shape[-1])
        self.stages = list(stages)
        self.timer = timer or StageTimer()
        self.cv2 = require("cv2", "core")
        self.paste = Paster(face)

    def render(self, fm, index: int) -> np.ndarray:
        from parla.edge.compose import compose, to_input
        from parla.face.warp import condition_maps, warp

        f, cv2, t0 = self.face, self.cv2, time.perf_counter()
        drv = self.basis.drive(f.landmarks, fm.coeffs, fm.pose, fm.blink, fm.mouth_close)
        w = warp(f.crop, f.landmarks, drv)
        x = to_input(cv2.resize(w, (self.res, self.res), interpolation=cv2.INTER_AREA), f.source_lr,
                     condition_maps(drv, self.res, f.crop.shape[0]))
        t1 = time.perf_counter()
        y = self.refiner.run(x)
        t2 = time.perf_counter()
        frame = self.paste(compose(w, x[0], y[0], self.mode))
        for stage in self.stages:
            frame = stage(frame, index)
        t3 = time.perf_counter()
        self.timer.add("warp", (t1 - t0) * 1e3)
        self.timer.add("refiner", (t2 - t1) * 1e3)
        self.timer.add("paste_back", (t3 - t2) * 1e3)
        return frame


def face_from_image(image: np.ndarray, res: int, *, face_index: int | None = None, name: str = "portrait") -> Face:
    from parla.face.detect import detect_faces, select_face
    from parla.pipeline import portrait_from_face

    face = select_face(detect_faces(image), face_index, name=name)
    p = portrait_from_face(image, face.landmarks, res)
    return Face(p.image, p.crop, p.alignment, p.landmarks, p.source_lr)
