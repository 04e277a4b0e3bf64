"""Firmware configs (`firmware_configs/*.yaml`): one per hardware target, validated by a dataclass schema.

Precedence: the schema's defaults < the YAML file < CLI flags (``merge``). A bad config fails fast with the
field and the reason: unknown keys, wrong types, values out of range, and combinations a target cannot run
(int8 on a backend without int8, an NPU through a runtime that has none, a delegate outside TFLite).
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from parla.errors import ParlaError
from parla.formats import BACKENDS, by_backend
from parla.limits import MAX_FPS


def config_dir() -> Path:
    """The bundled firmware configs: ``firmware_configs/`` at the repository root, shipped in the wheel as
    ``parla/firmware_configs`` (package data), so a non-editable install finds them too."""
    from importlib.resources import as_file, files

    with as_file(files("parla") / "firmware_configs") as p:
        return Path(p)


class ConfigError(ParlaError):
    """A firmware config that does not validate (the message names the field)."""


@dataclass
class AudioConfig:
    source: str = "file"  # mic | file | stdin
    sample_rate: int = 16_000  # Hz of the source (resampled to 16 kHz)
    chunk_ms: int = 40
    device_index: int | None = None  # PyAudio input device (mic)
    channels: int = 1


@dataclass
class CameraConfig:
    enabled: bool = False
    driver: str = "opencv"  # picamera2 | opencv
    index: int = 0  # OpenCV device index
    resolution: tuple[int, int] = (1280, 720)
    lores: tuple[int, int] = (320, 240)  # picamera2 ISP low-res stream for the face detector
    timeout_s: float = 15.0


@dataclass
class VideoConfig:
    fps: float = 25.0
    sink: str = "window"  # window | file:PATH | stdout | web
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    queue_frames: int = 8  # bounded queue between stages


@dataclass
class RuntimeConfig:
    target: str = "x86-cpu"
    description: str = ""
    backend: str = "openvino"
    device: str = "CPU"
    precision: str = "int8"
    threads: int | None = None
    fallback_to_cpu: bool = True
    model: str = "default"  # 'default' (the bundled model folder), a model folder or a 'parla export' folder
    delegate: str | None = None  # TFLite external delegate library (e.g. libedgetpu.so.1)
    static_shapes: bool = True
    latency_budget_ms: float = 150.0  # audio-to-frame
    audio: AudioConfig = field(default_factory=AudioConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    video: VideoConfig = field(default_factory=VideoConfig)


CHOICES = {
    "backend": (*BACKENDS, "auto"),
    "audio.source": ("mic", "file", "stdin"),
    "camera.driver": ("picamera2", "opencv"),
}
# TFLite external delegates a config may name (the system's loader finds them in its library path);
# any other library needs the environment variable, set by whoever controls the process, not the config file
KNOWN_DELEGATES = {"libedgetpu.so.1", "libvx_delegate.so", "libethosu_delegate.so", "libQnnTFLiteDelegate.so"}
ALLOW_DELEGATE = "PARLA_ALLOW_DELEGATE"

# The command line's ranges (parla.argtypes) hold for a config file's values too: a file is not a way around
# them (fps 1e9 ran away, a 100,000-s audio chunk rendered 13 frames of 179, web_port 70000 was accepted)
RANGES: dict[str, tuple[float, float]] = {
    "threads": (1, 256),
    "latency_budget_ms": (1, 60_000),
    "audio.sample_rate": (8_000, 192_000),
    "audio.chunk_ms": (10, 1_000),
    "audio.channels": (1, 64),
    "camera.timeout_s": (0.1, 3_600),
    "video.fps": (1, MAX_FPS),
    "video.web_port": (1, 65_535),
    "video.queue_frames": (1, 1_024),
    "camera.index": (0, 255),
}


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    return cls(**kwargs)


def _show(value) -> str:
    """A value quoted in an error message, cut short (a YAML alias bomb expands to gigabytes)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxstring, r.maxother = 2, 4, 4, 4, 40, 40
    return r.repr(value)


def _coerce(tp, value, name: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, name + ".")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, name)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} numbers, got {_show(value)}")
        return tuple(_coerce(a, v, name) for a, v in zip(args, value, strict=True))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {_show(value)}")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and value != int(value)):
            raise ConfigError(f"{name}: expected {'an integer' if tp is int else 'a number'}, got {_show(value)}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {_show(value)}")
        return value
    return value


def _get(cfg: RuntimeConfig, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def validate(cfg: RuntimeConfig) -> RuntimeConfig:
    """Values and combinations; raises ConfigError naming the field."""
    _check_values(cfg)
    _check_combinations(cfg)
    sink = cfg.video.sink
    if not (sink in ("window", "stdout", "web") or sink.startswith("file:")):
        raise ConfigError(f"video.sink: {sink!r} is not window, stdout, web or file:PATH")
    return cfg


def _check_values(cfg: RuntimeConfig) -> None:
    for key, allowed in CHOICES.items():
        if _get(cfg, key) not in allowed:
            raise ConfigError(f"{key}: {_get(cfg, key)!r} is not one of {', '.join(allowed)}")
    for key, (lo, hi) in RANGES.items():
        v = _get(cfg, key)
        if v is not None and not (math.isfinite(v) and lo <= v <= hi):
            raise ConfigError(f"{key}: {v!r} is out of range ({lo:g}..{hi:g})")


def _check_combinations(cfg: RuntimeConfig) -> None:
    fmt = by_backend(cfg.backend)
    if cfg.precision not in fmt.precisions:
        raise ConfigError(f"precision: {cfg.backend} has no {cfg.precision} (it runs {', '.join(fmt.precisions)})")
    if cfg.device not in fmt.devices:
        raise ConfigError(f"device: {cfg.backend} has no device {cfg.device!r} (one of {', '.join(fmt.devices)})")
    if cfg.delegate and cfg.backend != "tflite":
        raise ConfigError("delegate: only the tflite backend loads external delegates")
    if cfg.delegate and cfg.delegate not in KNOWN_DELEGATES and os.environ.get(ALLOW_DELEGATE) != cfg.delegate:
        # a delegate is native code loaded into the process: a config file must not be able to name any library
        raise ConfigError(
            f"delegate: {_show(cfg.delegate)} is not a known delegate library ({', '.join(sorted(KNOWN_DELEGATES))});"
            f" to load it anyway, set {ALLOW_DELEGATE} to exactly that path"
        )
    if cfg.backend == "tflite" and cfg.device == "edgetpu":
        if not cfg.delegate:
            raise ConfigError("delegate: device edgetpu needs the delegate library (libedgetpu.so.1)")
        if cfg.precision != "int8":
            raise ConfigError("precision: the Edge TPU runs only full-int8 models (precision: int8)")
    if cfg.backend == "openvino" and cfg.device == "NPU" and not cfg.static_shapes:
        raise ConfigError("static_shapes: the OpenVINO NPU plugin needs static shapes")
    if cfg.camera.enabled and cfg.camera.lores[0] > cfg.camera.resolution[0]:
        raise ConfigError("camera.lores: the low-res stream must not be larger than camera.resolution")


def load_config(name_or_path: str | os.PathLike, overrides: dict | None = None) -> RuntimeConfig:
    """A target name (``rpi5``) or a YAML path, with CLI ``overrides`` ({'device': 'CPU', 'video.fps': 30})."""
    p = Path(name_or_path)
    bundled = config_dir()
    if not p.suffix:
        p = bundled / f"{name_or_path}.yaml"
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in bundled.glob("*.yaml"))) if bundled.is_dir() else "none"
        raise ConfigError(f"{name_or_path}: no such firmware config (bundled targets: {known})")
    data = read_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return validate(_build(RuntimeConfig, resolve_auto(merge(data, overrides or {})), ""))
    except ConfigError as e:
        raise ConfigError(f"{p.name}: {e}") from None


AUTO_ORDER = ("openvino", "onnxruntime", "tflite")  # fastest measured first (docs/benchmarks.md)


def resolve_auto(data: dict) -> dict:
    """``backend: auto``: the first installed runtime of AUTO_ORDER (onnxruntime always is: Parla depends on it).
    ``device: cpu`` (any case) is spelled as the chosen runtime names the host CPU."""
    from parla.formats import by_backend

    backend = data.get("backend", "openvino")
    if backend == "auto":
        # the first one only: importing the others costs memory a kiosk keeps for nothing (onnxruntime: 30 MB)
        found = next((b for b in AUTO_ORDER if _importable(by_backend(b).runtime)), None)
        if found is None:
            raise ConfigError("backend: auto found no runtime; pip install 'parla[onnx]' (or [openvino], [tflite])")
        backend = found
    if backend not in BACKENDS:
        return data  # validation names the error
    device = str(data.get("device", "cpu"))
    return {**data, "backend": backend, "device": by_backend(backend).cpu_device if device.lower() == "cpu" else device}


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
        return True
    except Exception:  # not installed, or installed and broken: either way not a runtime to pick
        return False


def read_yaml(p: Path):
    """A YAML file of at most MAX_CONFIG_BYTES, without anchors and aliases (a config needs none, and aliases can
    expand a few hundred bytes into gigabytes)."""
    import yaml

    from parla.limits import MAX_CONFIG_BYTES

    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: {p.stat().st_size} bytes, over the {MAX_CONFIG_BYTES >> 10} KiB limit for a config")
    try:
        text = p.read_text(encoding="utf-8")
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(f"{p}: YAML aliases (*name) are not allowed in a config")
        return yaml.safe_load(text) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from e


def merge(data: dict, overrides: dict) -> dict:
    """Apply dotted-key overrides (CLI flags; None means 'not given') on a nested config dict."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
