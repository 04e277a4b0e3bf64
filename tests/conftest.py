from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
# A fixed watermark install id: tests never write the user's ~/.config/parla/install_id.
os.environ.setdefault("PARLA_INSTALL_ID", "0x123")
# ... and never the user's Content Credentials key: a config folder of the test session's own.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="parla-test-config-")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def speech_path() -> Path:
    return DATA / "speech_en.wav"


@pytest.fixture(scope="session")
def face_path() -> Path:
    return DATA / "astronaut.jpg"


@pytest.fixture(scope="session")
def speech(speech_path) -> np.ndarray:
    from parla.audio import load_audio

    return load_audio(speech_path)


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip where this checkout has no shared data beside it."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (../shared/data is not beside this checkout)")
    return p
