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


def logmel_settings(**overrides):
    """The bundled model's synthesis settings as a log-mel lips net would have them (80 inputs, the calibrated
    level-driven pause closing and 1-s hold): for tests of the synthesizer's mechanisms with a stand-in net."""
    from dataclasses import replace

    from parla.edge.synth import MotionSettings
    from parla.modelfolder import ModelFolder
    from parla.training.bundle import SYNTHESIS

    s = MotionSettings.from_folder(ModelFolder())
    base = dict(
        mel_mean=s.mel_mean[:80],
        mel_std=s.mel_std[:80],
        phonemes=None,
        close_pauses=True,
        min_pause_s=0.0,
        quiet_pauses=False,
        silence_hold_s=SYNTHESIS["silence_hold_s"],
    )
    return replace(s, **{**base, **overrides})


def known_front_end(settings, audio):
    """The phoneme front-end for audio known whole, when the settings' lips read phoneme features (else None)."""
    if settings.phonemes is None:
        return None
    from parla.audio import phonemes as ph

    encoder = ph.PhonemeEncoder()
    return ph.KnownPhonemes(ph.encode(encoder, audio), encoder.silence)
