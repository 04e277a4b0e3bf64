"""The hostile-input battery (issue 16): corrupt, extreme and malicious inputs to every command, each run as a real
`python -m parla` process. Every case must give a correct output or exactly one `parla: error:` line with exit
code 2, within 10 s and 500 MB of peak RSS, leave no file behind and never touch an input. The fixtures are
generated here; the bombs are a few hundred bytes (or sparse files) that claim gigapixels or hours.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
HANG_SECONDS = 300.0  # a case still running then has hung (its refusal takes seconds): killed, and it fails
MAX_RSS_MB = 500.0
# `python -m parla` that also writes its own peak RSS (VmHWM, which starts afresh at exec) to PARLA_HWM_FILE:
# the kernel's ru_maxrss of a child carries the forking parent's peak across exec, and pytest's can be 1.5 GB.
LAUNCH = """
import os, sys
from parla.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 2
finally:
    with open("/proc/self/status") as f:
        hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["PARLA_HWM_FILE"], "w") as f:
        f.write(hwm)
sys.exit(code)
"""


# --- generated fixtures ---------------------------------------------------------------------------------------


def png_bytes(width: int, height: int, rows: int = 4) -> bytes:
    """A PNG whose header says width x height (RGB) and whose data holds only ``rows`` rows: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(3 * width) for _ in range(rows))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def wav_bytes(samples: np.ndarray, rate: int = 16000, *, declared_frames: int | None = None) -> bytes:
    """A WAV: 16-bit PCM for integer input, IEEE float32 otherwise; ``declared_frames`` lets the header lie."""
    is_float = samples.dtype.kind == "f"
    data = samples.astype("<f4" if is_float else "<i2").tobytes()
    width = 4 if is_float else 2
    n = len(data) if declared_frames is None else declared_frames * width
    fmt = struct.pack("<HHIIHH", 3 if is_float else 1, 1, rate, rate * width, width, 8 * width)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + n)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", n)
        + data
    )


def make_kit(kit: Path) -> dict[str, Path]:
    """Every input of the battery, written into ``kit``."""
    import cv2

    k: dict[str, Path] = {"face": DATA / "astronaut.jpg", "speech": DATA / "speech_en.wav"}

    def put(name: str, data: bytes) -> Path:
        p = kit / name
        p.write_bytes(data)
        k[name] = p
        return p

    face = cv2.imread(str(k["face"]))
    put("png_bomb.png", png_bytes(20000, 20000))
    put("jpeg_bomb.jpg", b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 65000, 65000) + bytes(10) + b"\xff\xd9")
    put("bmp_bomb.bmp", b"BM" + bytes(16) + struct.pack("<ii", 30000, 30000) + bytes(40))
    put("tiff_bomb.tif", b"II*\x00" + struct.pack("<IH", 8, 2) + struct.pack("<HHII", 256, 4, 1, 40000)
        + struct.pack("<HHII", 257, 4, 1, 40000) + bytes(4))  # fmt: skip
    put("webp_bomb.webp", b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10) + bytes(4)
        + (16383).to_bytes(3, "little") * 2)  # fmt: skip
    put("truncated.png", cv2.imencode(".png", face)[1].tobytes()[:5000])
    put("zero.jpg", b"")
    put("text.jpg", b"this is not an image\n" * 50)
    put("tiny.png", cv2.imencode(".png", np.zeros((10, 10, 3), np.uint8))[1].tobytes())
    put("noface.png", cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))[1].tobytes())
    huge = kit / "huge.jpg"
    with open(huge, "wb") as f:  # sparse: 101 MB that take no disk
        f.write(b"\xff\xd8")
        f.truncate(101 * 2**20)
    k["huge.jpg"] = huge
    (kit / "folder.jpg").mkdir()
    k["folder.jpg"] = kit / "folder.jpg"
    os.mkfifo(kit / "fifo.wav")
    k["fifo.wav"] = kit / "fifo.wav"

    hour = kit / "hour_silent.wav"  # a header that says one hour, sparse zeros behind it
    hour.write_bytes(wav_bytes(np.zeros(0, np.int16), declared_frames=16000 * 3600))
    with open(hour, "r+b") as f:
        f.truncate(44 + 2 * 16000 * 3600)
    k["hour_silent.wav"] = hour
    t = np.arange(16000, dtype=np.float32) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    put("huge_samples.wav", wav_bytes((tone * 1e30).astype(np.float32)))
    put("nan.wav", wav_bytes(np.where(t > 0.5, np.nan, tone).astype(np.float32)))
    put("short.wav", wav_bytes((tone[:800] * 3e4).astype(np.int16)))
    put("header_only.wav", wav_bytes(np.zeros(0, np.int16)))
    put("zero_rate.wav", wav_bytes((tone * 3e4).astype(np.int16), rate=0))
    put("silent.wav", wav_bytes(np.zeros(16000, np.int16)))
    put("corrupt.mp3", b"\xff\xfb\x90\x00" + bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8)))
    put("text.wav", b"hello " * 300)
    put("random.mp4", bytes(np.random.default_rng(2).integers(0, 256, 20000, np.uint8)))
    _video_without_audio(kit / "noaudio.mp4")
    k["noaudio.mp4"] = kit / "noaudio.mp4"
    (kit / "empty_dir").mkdir()
    k["empty_dir"] = kit / "empty_dir"

    yaml = {
        "alias_bomb.yaml": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nthreads: *f\n",
        "list.yaml": "- backend: openvino\n- threads: 2\n",
        "syntax.yaml": "backend: [openvino\nthreads: : 2\n",
        "unknown_key.yaml": "backend: openvino\nwarp_drive: true\n",
        "bad_type.yaml": "backend: openvino\nthreads: many\n",
        "delegate.yaml": "backend: tflite\ndevice: edgetpu\nprecision: int8\ndelegate: /tmp/evil.so\n",
        "big.yaml": "description: " + "x" * (2 * 2**20) + "\n",
        "fps_huge.yaml": "video:\n  fps: 1.0e+9\n",
        "fps_tiny.yaml": "video:\n  fps: 0.001\n",
        "fps_nan.yaml": "video:\n  fps: .nan\n",
        "port.yaml": "video:\n  web_port: 70000\n",
        "chunk.yaml": "audio:\n  chunk_ms: 100000000\n",
    }
    for name, text in yaml.items():
        put(name, text.encode())
    put("binary.yaml", bytes(range(256)) * 4)
    _model_folders(kit, k)
    return k


def _video_without_audio(path: Path) -> None:
    from parla.media.video import VideoWriter

    with VideoWriter(path, 25.0) as w:
        for _ in range(5):
            w.write(np.zeros((64, 64, 3), np.uint8))


def _flip(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _model_folders(kit: Path, k: dict[str, Path]) -> None:
    """Copies of the bundled model folder, each with one defect; export folders (edge files only) likewise."""
    import json

    from parla.modelfolder import bundled_path, write_sha256sums

    src = bundled_path()

    def copy(name: str) -> Path:
        dst = kit / name
        shutil.copytree(src, dst)
        k[name] = dst
        return dst

    _flip(copy("model_flipped_weights") / "motion.safetensors")
    _flip(copy("model_flipped_student") / "student.safetensors")
    _flip(copy("model_flipped_bin") / "edge" / "refiner_int8.bin")
    for name, key in (("model_escape", "../../../../etc/passwd"), ("model_device", "/dev/zero")):
        d = copy(name)
        cfg = json.loads((d / "config.json").read_text())
        cfg["sha256"][key] = "0" * 64
        (d / "config.json").write_text(json.dumps(cfg))
    copy("model_bad_json")
    (kit / "model_bad_json" / "config.json").write_text('{"refiner": ')
    copy("model_deep_json")
    (kit / "model_deep_json" / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    copy("model_big_json")
    (kit / "model_big_json" / "config.json").write_text('{"x": "' + "y" * (2 * 2**20) + '"}')
    for name in ("export_unsigned", "export_flipped"):
        d = kit / name
        shutil.copytree(src / "edge", d)
        k[name] = d
    write_sha256sums(k["export_flipped"], [p.name for p in k["export_flipped"].iterdir()])
    _flip(k["export_flipped"] / "refiner_int8.bin")
    for name in ("model_flipped_bin", "export_unsigned", "export_flipped"):
        k[f"{name}.yaml"] = kit / f"{name}.yaml"
        k[f"{name}.yaml"].write_text(f"backend: openvino\nmodel: {k[name]}\n")


# --- the battery ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    argv: list[str]  # "{name}" is a kit file, "{out}" the case's own output folder
    code: int = 2
    match: str = ""  # a fragment of the error line (lower case)
    creates: list[str] = field(default_factory=list)  # files a successful case writes into {out}


BOMBS = ["png_bomb.png", "jpeg_bomb.jpg", "bmp_bomb.bmp", "tiff_bomb.tif", "webp_bomb.webp"]
BAD_IMAGES = {
    "truncated.png": "not a readable image",
    "zero.jpg": "not a readable image",
    "text.jpg": "not a readable image",
    "tiny.png": "too small",
    "noface.png": "no face",
    "huge.jpg": "limit",
    "folder.jpg": "directory",
    "missing.jpg": "no such file",
}
BAD_AUDIO = {
    "hour_silent.wav": "30-minute limit",
    "huge_samples.wav": "outside [-1, 1]",
    "nan.wav": "nan",
    "short.wav": "shorter than 0.1 s",
    "header_only.wav": "empty",
    "zero_rate.wav": "",
    "silent.wav": "silent",
    "corrupt.mp3": "",
    "text.wav": "audio",
    "noaudio.mp4": "no audio stream",
    "fifo.wav": "not a regular file",
    "empty_dir": "directory",
}
CONFIGS = {
    "alias_bomb.yaml": "aliases",
    "list.yaml": "mapping",
    "syntax.yaml": "not valid yaml",
    "unknown_key.yaml": "unknown key",
    "bad_type.yaml": "threads",
    "delegate.yaml": "not a known delegate",
    "big.yaml": "limit",
    "fps_huge.yaml": "out of range",
    "fps_tiny.yaml": "out of range",
    "fps_nan.yaml": "out of range",
    "port.yaml": "out of range",
    "chunk.yaml": "out of range",
    "binary.yaml": "",
    "no-such-target": "no such firmware config",
}


def cases() -> list[Case]:
    c: list[Case] = []
    anim = ["animate", "{face}", "{speech}", "-o", "{out}/o.mp4"]
    for b in BOMBS:
        c.append(Case(f"face-{b}", ["face", f"{{{b}}}"], match="limit"))
    c += [
        Case("verify-png_bomb", ["verify", "{png_bomb.png}"], match="limit"),
        Case("animate-png_bomb", ["animate", "{png_bomb.png}", "{speech}", "-o", "{out}/o.mp4"], match="limit"),
        Case(
            "stream-png_bomb",
            ["stream", "{png_bomb.png}", "--audio", "{speech}", "--sink", "file:{out}/o.mp4"],
            match="limit",
        ),  # fmt: skip
        Case("eval-gen-png_bomb", ["eval", "gen", "{noaudio.mp4}", "--portrait", "{png_bomb.png}"], match="limit"),
    ]
    for name, match in BAD_IMAGES.items():
        c.append(Case(f"face-{name}", ["face", f"{{{name}}}" if name != "missing.jpg" else "nope.jpg"], match=match))
    c.append(Case("face-dev-zero", ["face", "/dev/zero"], match="not a regular file"))
    for name, match in BAD_AUDIO.items():
        c.append(Case(f"animate-{name}", ["animate", "{face}", f"{{{name}}}", "-o", "{out}/o.mp4"], match=match))
    c.append(Case("stream-hour_silent", ["stream", "{face}", "--audio", "{fifo.wav}", "--sink", "file:{out}/o.mp4"],
                  match="not a regular file"))  # fmt: skip
    options = [
        ("fps-negative", [*anim, "--fps", "-5"], "--fps"),
        ("fps-zero", [*anim, "--fps", "0"], "--fps"),
        ("fps-nan", [*anim, "--fps", "nan"], "--fps"),
        ("fps-inf", [*anim, "--fps", "inf"], "--fps"),
        ("fps-huge", [*anim, "--fps", "100000"], "--fps"),
        ("fps-text", [*anim, "--fps", "fast"], "--fps"),
        ("pose-nan", [*anim, "--pose-scale", "nan"], "--pose-scale"),
        ("pose-huge", [*anim, "--pose-scale", "1e9"], "--pose-scale"),
        ("seed-negative", [*anim, "--seed", "-1"], "--seed"),
        ("face-index-negative", [*anim, "--face-index", "-1"], "--face-index"),
        ("emotion-bogus", [*anim, "--emotion", "furious"], "emotion"),
        ("stream-port", ["stream", "{face}", "--audio", "{speech}", "--port", "70000"], "--port"),
        ("stream-seconds", ["stream", "{face}", "--audio", "{speech}", "--seconds", "-1"], "--seconds"),
        ("stream-speed", ["stream", "{face}", "--audio", "{speech}", "--speed", "-1"], "--speed"),
        ("stream-chunk", ["stream", "{face}", "--audio", "{speech}", "--chunk-ms", "0"], "--chunk-ms"),
        ("stream-sink", ["stream", "{face}", "--audio", "{speech}", "--sink", "telepathy"], "sink"),
        ("stream-no-portrait", ["stream", "--audio", "{speech}"], "portrait"),
        ("verify-frames", ["verify", "{face}", "--frames", "0"], "--frames"),
        ("bench-threads", ["bench", "--threads", "0"], "--threads"),
        ("bench-model", ["bench", "--model", "{face}"], "model folder"),
        ("unknown-command", ["fly"], "invalid choice"),
    ]
    c += [Case(f"option-{i}", argv, match=m.lower()) for i, argv, m in options]
    outputs = [
        ("animate-onto-photo", ["animate", "{face_copy}", "{speech}", "-o", "{face_copy}"], "is also an input"),
        ("animate-onto-speech", ["animate", "{face}", "{speech_copy}", "-o", "{speech_copy}"], "is also an input"),
        ("face-onto-photo", ["face", "{face_copy}", "-o", "{face_copy}"], "is also an input"),
        ("verify-json-onto-input", ["verify", "{face_copy}", "--json", "{face_copy}"], "is also an input"),
        ("animate-dev-null", [*anim[:-1], "/dev/null"], "not a regular file"),
        ("animate-no-dir", [*anim[:-1], "{out}/no/such/o.mp4"], "does not exist"),
        ("animate-onto-dir", [*anim[:-1], "{out}"], "is a directory"),
        ("animate-name-too-long", [*anim[:-1], "{out}/" + "n" * 300 + ".mp4"], "longer than 255"),
        ("face-bad-suffix", ["face", "{face}", "-o", "{out}/x.xyz"], "suffix"),
        (
            "stream-sink-onto-speech",
            ["stream", "{face}", "--audio", "{speech_copy}", "--sink", "file:{speech_copy}"],
            "is also an input",
        ),  # fmt: skip
        (
            "stream-stats-onto-speech",
            ["stream", "{face}", "--audio", "{speech_copy}", "--sink", "file:{out}/o.mp4", "--stats", "{speech_copy}"],
            "is also an input",
        ),  # fmt: skip
        (
            "stream-stats-onto-recording",
            ["stream", "{face}", "--audio", "{speech}", "--sink", "file:{out}/o.mp4", "--stats", "{out}/o.mp4"],
            "another output",
        ),  # fmt: skip
        (
            "eval-sheet-onto-json",
            [
                "eval",
                "gen",
                "{noaudio.mp4}",
                "--portrait",
                "{face}",
                "--json",
                "{out}/r.json",
                "--sheet",
                "{out}/r.json",
            ],
            "another output",
        ),  # fmt: skip
        ("eval-json-dir", ["eval", "gen", "{noaudio.mp4}", "--portrait", "{face}", "--json", "{out}"], "directory"),
        ("export-onto-file", ["export", "default", "--format", "onnx", "-o", "{face_copy}"], "not a folder"),
    ]
    c += [Case(f"output-{i}", argv, match=m) for i, argv, m in outputs]
    c.append(Case("face-long-name", ["face", "{face}", "-o", "{out}/" + "n" * 240 + ".png"], code=0,
                  creates=["n" * 240 + ".png"]))  # fmt: skip
    for name, match in CONFIGS.items():
        c.append(Case(f"config-{name}", ["stream", "{face}", "--audio", "{speech}", "--config",
                                         f"{{{name}}}" if name.endswith(".yaml") else name], match=match))  # fmt: skip
    models = [
        ("flipped-weights", [*anim, "--model", "{model_flipped_weights}", "--backend", "torch"], "checksum mismatch"),
        ("escape", [*anim, "--model", "{model_escape}"], "outside the model folder"),
        ("device", [*anim, "--model", "{model_device}"], "outside the model folder"),
        ("bad-json", [*anim, "--model", "{model_bad_json}"], "unreadable"),
        ("deep-json", [*anim, "--model", "{model_deep_json}"], "unreadable"),
        ("big-json", [*anim, "--model", "{model_big_json}"], "limit"),
        ("not-a-folder", [*anim, "--model", "{empty_dir}"], "not a parla model folder"),
        (
            "stream-flipped-bin",
            ["stream", "{face}", "--audio", "{speech}", "--config", "{model_flipped_bin.yaml}"],
            "checksum mismatch",
        ),  # fmt: skip
        (
            "stream-export-unsigned",
            ["stream", "{face}", "--audio", "{speech}", "--config", "{export_unsigned.yaml}"],
            "sha256sums",
        ),  # fmt: skip
        (
            "stream-export-flipped",
            ["stream", "{face}", "--audio", "{speech}", "--config", "{export_flipped.yaml}"],
            "checksum mismatch",
        ),  # fmt: skip
        ("eval-reenact-flipped", ["eval", "reenact", "{empty_dir}", "--model", "{model_flipped_weights}"], ""),
        ("export-flipped", ["export", "{model_flipped_student}", "--format", "onnx", "-o", "{out}/x"], "checksum"),
        ("export-escape", ["export", "{model_escape}", "--format", "onnx", "-o", "{out}/x"], "outside the model"),
    ]
    c += [Case(f"model-{i}", argv, match=m) for i, argv, m in models]
    c += [
        Case("eval-gen-random", ["eval", "gen", "{random.mp4}", "--portrait", "{face}"], match="not a readable video"),
        Case("eval-gen-missing", ["eval", "gen", "nope.mp4", "--portrait", "{face}"], match="no such file"),
        Case("eval-real-empty", ["eval", "real", "{empty_dir}"], match="no video"),
        Case("verify-random", ["verify", "{random.mp4}"], match="not a readable video"),
        Case("verify-zero", ["verify", "{zero.jpg}"], match="not a readable image"),
        Case("prepare-empty", ["prepare", "{empty_dir}", "-o", "{out}/data"], match="no video"),
    ]
    return c


CASES = cases()


def _subst(arg: str, kit: dict[str, Path], out: Path) -> str:
    for name, path in kit.items():
        arg = arg.replace(f"{{{name}}}", str(path))
    return arg.replace("{out}", str(out))


def run_case(case: Case, kit: dict[str, Path], root: Path) -> dict:
    out = root / case.id
    out.mkdir()
    own = dict(kit)
    for name in ("face", "speech"):  # inputs a case may try to overwrite: private copies, checked afterwards
        own[f"{name}_copy"] = out / f"in_{kit[name].name}"
        shutil.copy(kit[name], own[f"{name}_copy"])
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    argv = [_subst(a, own, out) for a in case.argv]
    hwm = out.parent / f"{case.id}.hwm"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PARLA_INSTALL_ID": "0x123", "PARLA_HWM_FILE": str(hwm)}
    with open(out.parent / f"{case.id}.out", "wb") as so, open(out.parent / f"{case.id}.err", "wb") as se:
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-c", LAUNCH, *argv], stdout=so, stderr=se, stdin=subprocess.DEVNULL,
                             cwd=out, env=env)  # fmt: skip
        while True:
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > HANG_SECONDS:  # a hang guard, not a time limit: the case then fails
                p.kill()
                pid, status, _ = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    after = {x.name: hashlib.sha256(x.read_bytes()).hexdigest() for x in out.iterdir() if x.is_file()}
    return {
        "code": p.returncode,
        "err": (out.parent / f"{case.id}.err").read_text(errors="replace"),
        "seconds": seconds,
        "rss_mb": int(hwm.read_text()) / 1024 if hwm.is_file() else float("inf"),  # no report: a crash
        "inputs_kept": all(after.get(n) == h for n, h in before.items()),
        "new_files": sorted(set(after) - set(before)) + [x.name for x in out.iterdir() if x.is_dir()],
    }


@pytest.fixture(scope="module")
def battery(tmp_path_factory) -> dict[str, dict]:
    """Every case, two at a time (this machine has 2 cores), once per test session."""
    kit_dir = tmp_path_factory.mktemp("kit")
    kit = make_kit(kit_dir)
    fingerprint = {p: p.stat().st_size for p in kit.values() if p.is_file() and not p.is_fifo()}
    root = tmp_path_factory.mktemp("runs")
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip([c.id for c in CASES], pool.map(lambda c: run_case(c, kit, root), CASES), strict=True))
    results["_kit_kept"] = {"ok": all(p.stat().st_size == n for p, n in fingerprint.items())}
    return results


def test_battery_size():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(battery, case: Case):
    r = battery[case.id]
    lines = [ln for ln in r["err"].splitlines() if ln.strip()]
    assert r["code"] == case.code, r["err"][-2000:]
    assert "Traceback" not in r["err"]
    if case.code:
        assert len(lines) == 1, r["err"][-2000:]
        assert lines[0].startswith("parla: error: ")
        assert case.match.lower() in lines[0].lower(), lines[0]
    assert r["rss_mb"] <= MAX_RSS_MB, r
    assert r["inputs_kept"], "an input was modified"
    assert r["new_files"] == sorted(case.creates), r["new_files"]


@pytest.mark.slow
def test_battery_leaves_inputs_alone(battery):
    assert battery["_kit_kept"]["ok"]
