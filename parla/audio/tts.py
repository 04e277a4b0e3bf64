"""Offline text-to-speech with phoneme timing: eSpeak NG (``pip install 'parla[tts]'``, the ``espeakng-loader``
wheel, which ships libespeak-ng and its voices; GPL engine, so it stays an optional extra).

``speak(text)`` -> ``Speech``: 16 kHz float32 audio and the phonemes with their start times, from the engine's own
phoneme events (not estimated): what the lip-closure check needs, and what a TTS-driven avatar can use directly.
Called through ctypes in synchronous mode; one engine per process (eSpeak keeps global state), guarded by a lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from parla.errors import ParlaError, require

MAX_CHARS = 5000  # one call's text: about 5 minutes of speech
BILABIALS = ("p", "b", "m")
_OUTPUT_SYNCHRONOUS = 2
_PHONEME_EVENTS = 0x0001
_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_EVENT_PHONEME, _EVENT_END, _EVENT_MSG_TERMINATED = 7, 5, 6


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the text
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Phoneme:
    symbol: str  # IPA, as eSpeak writes it (stress marks and length kept)
    start_s: float
    end_s: float

    @property
    def bilabial(self) -> bool:
        """/p b m/ (with aspiration, length or stress marks around them)."""
        core = self.symbol.strip("ˈˌːʰ")
        return core in BILABIALS


@dataclass
class Speech:
    audio: np.ndarray  # (n,) float32 at 16 kHz
    phonemes: list[Phoneme]


class _Engine:
    _lock = threading.Lock()
    _lib = None
    _rate = 0

    @classmethod
    def lib(cls):
        if cls._lib is None:
            loader = require("espeakng_loader", "tts")
            lib = ctypes.CDLL(loader.get_library_path())
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            rate = lib.espeak_Initialize(
                _OUTPUT_SYNCHRONOUS, 0, loader.get_data_path().encode(), _PHONEME_EVENTS | _PHONEME_IPA
            )
            if rate <= 0:
                raise ParlaError("tts: eSpeak NG failed to initialise (espeakng-loader's data folder unreadable?)")
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
            lib.espeak_Synth.argtypes = [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                ctypes.c_void_p, ctypes.c_void_p,
            ]  # fmt: skip
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            cls._lib, cls._rate = lib, rate
        return cls._lib


def speak(text: str, *, voice: str = "en-us", words_per_minute: int = 160) -> Speech:
    """Synthesize ``text`` (≤ 5,000 characters) with the eSpeak NG voice ``voice``."""
    text = text.strip()
    if not text:
        raise ParlaError("tts: no text to speak")
    if len(text) > MAX_CHARS:
        raise ParlaError(f"tts: at most {MAX_CHARS} characters per call, got {len(text)}")
    if not 80 <= words_per_minute <= 450:
        raise ParlaError(f"tts: words_per_minute must be 80..450, got {words_per_minute}")
    with _Engine._lock:
        lib = _Engine.lib()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ParlaError(f"tts: no eSpeak NG voice {voice!r} (e.g. en-us, en, fr, de, es, cmn)")
        lib.espeak_SetParameter(1, int(words_per_minute), 0)  # espeakRATE
        chunks: list[np.ndarray] = []
        events: list[tuple[str, int]] = []

        def collect(wav, n, ev) -> int:
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while ev[i].type != 0:  # espeakEVENT_LIST_TERMINATED
                if ev[i].type == _EVENT_PHONEME:
                    events.append((ev[i].id.string.decode("utf-8", "replace"), ev[i].audio_position))
                i += 1
            return 0

        cb = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(cb)
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise ParlaError(f"tts: eSpeak NG synthesis failed (status {status})")
        rate = _Engine._rate
    audio = np.concatenate(chunks).astype(np.float32) / 32768 if chunks else np.zeros(0, np.float32)
    audio = _to_16k(audio, rate)
    end = len(audio) / 16_000
    phonemes = [
        Phoneme(sym, t / 1000, (events[i + 1][1] / 1000) if i + 1 < len(events) else end)
        for i, (sym, t) in enumerate(events)
        if sym.strip()
    ]
    return Speech(audio, phonemes)


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == 16_000 or not len(audio):
        return audio
    from parla.audio.io import resample

    return resample(audio, rate)
