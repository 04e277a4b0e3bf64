"""Property-based fuzzing of the readers that take untrusted files (issue 16): the image, audio and config readers
and the image-header parser. Any input gives a valid result or a ParlaError (one `parla: error:` line at the CLI),
never another exception, a hang or an unbounded allocation. A bounded number of examples runs in the default
suite (derandomized, so CI is reproducible); raise PARLA_FUZZ_EXAMPLES for a longer hunt."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from parla.errors import ParlaError  # noqa: E402

DATA = Path(__file__).parent / "data"
EXAMPLES = int(os.environ.get("PARLA_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _seed_files() -> dict[str, bytes]:
    import cv2

    from tests.test_hostile_inputs import png_bytes, wav_bytes

    face = cv2.imread(str(DATA / "astronaut.jpg"))
    small = cv2.resize(face, (64, 64))
    t = np.arange(4000, dtype=np.float32) / 16000
    return {
        "jpg": (DATA / "astronaut.jpg").read_bytes()[:20000],
        "png": cv2.imencode(".png", small)[1].tobytes(),
        "webp": cv2.imencode(".webp", small)[1].tobytes(),
        "bmp": cv2.imencode(".bmp", small)[1].tobytes(),
        "tif": cv2.imencode(".tif", small)[1].tobytes(),
        "bomb": png_bytes(20000, 20000, rows=1),
        "wav": wav_bytes((np.sin(2 * np.pi * 200 * t) * 2e4).astype(np.int16)),
        "fwav": wav_bytes(np.sin(2 * np.pi * 200 * t).astype(np.float32)),
    }


SEEDS = _seed_files()


@st.composite
def mutated(draw, kinds: list[str]) -> bytes:
    """A seed file with random bytes overwritten, inserted or cut: mostly-valid inputs reach deep into decoders."""
    data = bytearray(SEEDS[draw(st.sampled_from(kinds))])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i : i + draw(st.integers(1, 64))]
    return bytes(data)


def _check(fn):
    try:
        return fn()
    except ParlaError:
        return None


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), mutated(["jpg", "png", "webp", "bmp", "tif", "bomb"])))
def test_image_header_parser(data):
    from parla.limits import image_size

    wh = image_size(data)
    assert wh is None or (len(wh) == 2 and all(isinstance(v, int) and v >= 0 for v in wh))


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), mutated(["jpg", "png", "webp", "bmp", "tif", "bomb"])))
def test_image_reader(tmp_path, data):
    from parla.limits import MAX_IMAGE_PIXELS
    from parla.media.image import load_image

    p = tmp_path / "x.img"
    p.write_bytes(data)
    img = _check(lambda: load_image(p))
    if img is not None:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[0] * img.shape[1] <= MAX_IMAGE_PIXELS


@FUZZ
@given(data=st.one_of(st.binary(max_size=4096), mutated(["wav", "fwav"])))
def test_audio_reader(tmp_path, data):
    from parla.audio.io import load_audio

    p = tmp_path / "x.wav"
    p.write_bytes(data)
    audio = _check(lambda: load_audio(p, max_seconds=60))
    if audio is not None:
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.all(np.isfinite(audio))


YAML_ATOMS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=4),
)  # fmt: skip
KEYS = st.sampled_from(
    ["backend", "device", "precision", "threads", "model", "delegate", "video", "audio", "camera", "fps", "sink",
     "web_port", "chunk_ms", "sample_rate", "resolution", "enabled", "static_shapes", "x"]
)  # fmt: skip


@FUZZ
@given(
    doc=st.one_of(
        st.text(max_size=300),
        st.recursive(st.dictionaries(KEYS, YAML_ATOMS, max_size=5), lambda c: st.dictionaries(KEYS, c, max_size=4)),
    )
)
def test_config_reader(tmp_path, doc):
    import yaml

    from parla.edge.config import load_config

    p = tmp_path / "c.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    _check(lambda: load_config(p))
