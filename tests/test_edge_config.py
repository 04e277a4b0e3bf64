"""Firmware configs: every bundled target validates; invalid ones fail naming the field; CLI overrides win."""

from __future__ import annotations

import pytest

from parla.edge.config import ConfigError, config_dir, load_config

TARGETS = sorted(p.stem for p in config_dir().glob("*.yaml"))


def test_the_required_targets_are_bundled():
    for t in (
        "x86-cpu",
        "rpi5",
        "rpi5-camera",
        "intel-core-ultra-npu",
        "coral-edgetpu",
        "jetson-orin",
        "nvidia-gpu-reference",
    ):
        assert t in TARGETS


@pytest.mark.parametrize("target", TARGETS)
def test_every_bundled_config_validates(target):
    cfg = load_config(target)
    assert cfg.target == target


@pytest.mark.parametrize(
    "yaml_text,field",
    [
        ("backend: openvino\nprecison: int8\n", "precison: unknown key"),
        ("backend: caffe\n", "backend:"),
        ("backend: torch\ndevice: cuda\nprecision: int8\n", "precision: torch has no int8"),
        ("backend: onnxruntime\ndevice: cpu\nprecision: fp16\n", "precision: onnxruntime has no fp16"),
        ("backend: onnxruntime\ndevice: NPU\nprecision: int8\n", "device: onnxruntime has no device 'NPU'"),
        ("backend: tflite\ndevice: edgetpu\nprecision: int8\n", "delegate: device edgetpu needs"),
        ("backend: tflite\ndevice: edgetpu\nprecision: w8\ndelegate: libedgetpu.so.1\n", "precision: the Edge TPU"),
        ("backend: openvino\ndevice: CPU\ndelegate: x.so\n", "delegate: only the tflite"),
        ("threads: -2\n", "threads: -2 is out of range (1..256)"),
        ("threads: two\n", "threads: expected an integer"),
        ("audio: {chunk_ms: 0}\n", "audio.chunk_ms: 0 is out of range (10..1000)"),
        ("video: {fps: .nan}\n", "video.fps: nan is out of range"),
        ("video: {fps: 1.0e+9}\n", "video.fps: 1000000000.0 is out of range (1..120)"),
        ("video: {web_port: 70000}\n", "video.web_port: 70000 is out of range (1..65535)"),
        ("audio: {source: radio}\n", "audio.source:"),
        ("audio: {rate: 16000}\n", "audio.rate: unknown key"),
        ("camera: {enabled: yes please}\n", "camera.enabled: expected true or false"),
        ("camera: {enabled: true, resolution: [640, 480], lores: [1280, 720]}\n", "camera.lores"),
        ("video: {sink: screen}\n", "video.sink:"),
        ("backend: openvino\ndevice: NPU\nstatic_shapes: false\n", "static_shapes:"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, yaml_text, field):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert field in str(e.value), str(e.value)
    assert str(e.value).startswith("bad.yaml: ")


def test_precedence_defaults_config_cli(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("backend: openvino\ndevice: CPU\nprecision: int8\nvideo: {fps: 30}\n")
    cfg = load_config(p)
    assert cfg.video.fps == 30 and cfg.video.queue_frames == 8  # config over defaults
    cfg = load_config(p, {"video.fps": 25, "threads": 1, "device": None})
    assert cfg.video.fps == 25 and cfg.threads == 1 and cfg.device == "CPU"  # CLI over config; None = not given
    with pytest.raises(ConfigError, match="precision: openvino has no w8"):
        load_config(p, {"precision": "w8"})


def test_unknown_target_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such firmware config"):
        load_config("toaster")
    p = tmp_path / "broken.yaml"
    p.write_text("backend: [openvino\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
