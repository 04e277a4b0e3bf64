"""Capture the portrait from a camera: picamera2 on a Raspberry Pi (full-resolution still + the ISP's ``lores``
stream sized for the face detector), OpenCV elsewhere. Waits for a usable face, with a timeout."""

from __future__ import annotations

import time

import numpy as np

from parla.edge.config import CameraConfig
from parla.errors import NoFaceFoundError, ParlaError, require


class OpenCvCamera:
    def __init__(self, cfg: CameraConfig, capture=None) -> None:
        cv2 = require("cv2", "core")
        self.cv2 = cv2
        self.cap = capture if capture is not None else cv2.VideoCapture(cfg.index)
        if not self.cap.isOpened():
            raise ParlaError(
                f"camera.index {cfg.index}: no camera could be opened (check the cable and "
                "/dev/video*, or give --portrait PHOTO instead of --camera)"
            )
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.resolution[0])
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.resolution[1])
        self.lores = cfg.lores

    def grab(self) -> tuple[np.ndarray, np.ndarray] | None:
        ok, bgr = self.cap.read()
        if not ok:
            return None
        rgb = self.cv2.cvtColor(bgr, self.cv2.COLOR_BGR2RGB)
        return rgb, self.cv2.resize(rgb, tuple(self.lores), interpolation=self.cv2.INTER_AREA)

    def close(self) -> None:
        self.cap.release()


class PiCamera:
    def __init__(self, cfg: CameraConfig, picamera2_module=None) -> None:
        if picamera2_module is None:
            try:
                import picamera2 as picamera2_module  # type: ignore[no-redef]
            except ImportError as e:
                raise ParlaError(
                    "camera.driver picamera2 needs the picamera2 package (Raspberry Pi OS: apt install "
                    "python3-picamera2, or pip install 'parla[pi]') and camera_auto_detect=1 in "
                    "config.txt (firmware_configs/files/config.txt)"
                ) from e
        self.cam = picamera2_module.Picamera2()
        conf = self.cam.create_still_configuration(
            main={"size": tuple(cfg.resolution), "format": "RGB888"},
            lores={"size": tuple(cfg.lores), "format": "YUV420"},
        )
        self.cam.configure(conf)
        self.cam.start()
        self.lores = cfg.lores

    def grab(self) -> tuple[np.ndarray, np.ndarray] | None:
        cv2 = require("cv2", "core")
        main = self.cam.capture_array("main")[..., ::-1].copy()  # picamera2's RGB888 is BGR in memory
        yuv = self.cam.capture_array("lores")
        lores = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
        return main, lores

    def close(self) -> None:
        self.cam.stop()
        self.cam.close()


def capture_portrait(cfg: CameraConfig, camera=None, detect=None) -> np.ndarray:
    """The first full-resolution frame in which the detector (run on the small stream) finds a face."""
    if detect is None:
        from parla.face.detect import detect_faces as detect
    if camera is None:
        camera = PiCamera(cfg) if cfg.driver == "picamera2" else OpenCvCamera(cfg)
    deadline = time.monotonic() + cfg.timeout_s
    try:
        while time.monotonic() < deadline:
            got = camera.grab()
            if got is None:
                time.sleep(0.05)
                continue
            full, small = got
            if detect(small):
                return full
            time.sleep(0.1)
    finally:
        camera.close()
    raise NoFaceFoundError(
        f"camera: no usable face within {cfg.timeout_s:g} s (face the camera, with light on it; "
        "camera.timeout_s sets the wait)"
    )
