"""The phoneme encoder: a pretrained speech front-end for the lips.

``hama==1.3.13`` (PyPI, Apache-2.0) ships a CTC phoneme recogniser, ``hama/assets/asr_waveform_fp16.onnx``
(2.3 M parameters): raw 16 kHz audio in, per 20 ms frame log-probabilities over 191 IPA classes out. Parla reads
its 256-d hidden state (the last attention layer's output, exposed as an extra graph output at load time): trained
on many speakers, it carries what the mouth does for voices our 52 training clips never had (docs/decisions.md).

- The model is read from the installed package's files and sha256-checked, never downloaded.
- It runs on onnxruntime (always installed with hama) or OpenVINO (the x86 default), both giving the same
  features to within float16 rounding. Targets whose networks run on TFLite run the encoder on onnxruntime.
- The encoder attends over its whole input (it is not causal), so a frame's features depend on the window around
  it. Offline (``encode``) windows are 10 s with 4 s of overlap, each frame taken from the window in which it lies
  farthest from an edge: the lips net was trained on clips of 1-20 s (median 5 s), and a 30-s window (the model's
  cap) costs 170-240 MB of attention buffers against 25-35 MB for 10 s (docs/decisions.md). Streaming
  (``StreamingPhonemes``) re-encodes a sliding window of one fixed length (silence before the stream's start) and
  emits a frame once ``future_s`` of audio after it has arrived: the look-ahead the source can afford.

Frame k is centred on sample 320 k; a clip of n samples has n // 320 + 1 frames.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from parla.errors import ParlaError, require

PACKAGE, PACKAGE_VERSION = "hama", "1.3.13"
ASSET = "assets/asr_waveform_fp16.onnx"
SHA256 = "a884b5ac55f8bbc00673e8cf6d2dd601aa76e5031dd85cf3de2f25b5987cd59a"
HIDDEN = "/acoustic_model/export_attn_layers.1/Add_4_output_0"
LOG_PROBS = "log_probs"  # the graph's own output: per frame, log-probabilities over the 191 phoneme classes
DIM = 256  # the hidden state's width
OUTPUTS = {"hidden": (HIDDEN, DIM), "log_probs": (LOG_PROBS, 191)}  # what a lips net can read, by name
SAMPLE_RATE = 16_000
HOP = 320  # samples per encoder frame (20 ms)
FRAMES_PER_SECOND = SAMPLE_RATE // HOP
MAX_SECONDS = 30.0  # the model's input cap (1,500 frames)
WINDOW_S = 10.0  # offline windows: inside the training clips' lengths, and bounded memory
OVERLAP_S = 4.0  # offline windows overlap by this much; each frame comes from the window it is central in
BACKENDS = ("onnxruntime", "openvino")
# A source whose audio exists ahead of playback but not whole (a long file decoded as it plays) streams with the
# offline windows' context: 2 s on both sides of every frame, in 0.1-s blocks (a 4.1-s window each: the encoder
# takes 7-13 % of real time on 2 threads)
AHEAD_PAST_S, AHEAD_FUTURE_S, AHEAD_EVERY = 2.0, 2.0, 5


def outputs_for(settings: dict | None) -> str:
    """The encoder outputs a model folder's lips net reads (config.json "phonemes" "outputs"; a folder that
    says nothing reads the hidden state alone, as every folder did before the option existed)."""
    return str((settings or {}).get("outputs", "hidden"))


def outputs_of_width(dim: int) -> str:
    """The outputs whose features are ``dim`` wide (a lips net's inputs past the log-mel)."""
    for names in ("hidden", "hidden+log_probs", "log_probs"):
        if sum(OUTPUTS[n][1] for n in names.split("+")) == dim:
            return names
    raise ParlaError(f"phoneme encoder: no combination of its outputs is {dim} wide")


def n_frames(n_samples: int) -> int:
    return n_samples // HOP + 1


def model_path() -> Path:
    """Where the installed hama package keeps the encoder, found without importing hama (whose import loads
    onnxruntime and its tokenizers: 26 MB that a process running the encoder on OpenVINO does not need)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ParlaError(
            f"the phoneme encoder needs the {PACKAGE} package's model file ({ASSET}): "
            f"pip install {PACKAGE}=={PACKAGE_VERSION}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / ASSET


def model_bytes() -> bytes:
    """The encoder's ONNX file from the installed hama package, verified."""
    path = model_path()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ParlaError(
            f"the phoneme encoder needs the {PACKAGE} package's model file ({ASSET}): "
            f"pip install --force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
        ) from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ParlaError(
            f"{PACKAGE}/{ASSET}: sha256 {digest[:12]}… is not the verified {SHA256[:12]}… (a modified file or another "
            f"{PACKAGE} version): pip install --force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
        )
    return data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        n |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if b < 0x80:
            return n, i


def with_output(model: bytes, name: str) -> bytes:
    """An ONNX model (serialized ModelProto) with the tensor ``name`` added as a graph output, edited in its
    protobuf encoding (ModelProto.graph is field 7, GraphProto.output field 12, ValueInfoProto.name field 1), so
    that onnxruntime can return the hidden state without the onnx package."""
    i = 0
    while i < len(model):
        start = i
        tag, i = _read_varint(model, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, i = _read_varint(model, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            size, body = _read_varint(model, i)
            i = body + size
            if field == 7:
                name_b = name.encode()
                info = b"\x0a" + _varint(len(name_b)) + name_b
                graph = model[body:i] + b"\x62" + _varint(len(info)) + info
                return model[:start] + b"\x3a" + _varint(len(graph)) + graph + model[i:]
        else:
            break
    raise ParlaError(f"{PACKAGE}/{ASSET}: not an ONNX model with a graph")


class PhonemeEncoder:
    """One window of audio (≤ 30 s, 16 kHz float) -> (n_frames, dim) float32 features: the ``outputs`` named in
    OUTPUTS, joined by "+" ("hidden": the 256-d hidden state; "hidden+log_probs": it and the 191 log-probabilities),
    side by side in that order."""

    def __init__(self, backend: str = "onnxruntime", threads: int | None = 1, outputs: str = "hidden") -> None:
        if backend not in BACKENDS:
            raise ParlaError(f"phoneme encoder: backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        names = outputs.split("+")
        if not names or any(n not in OUTPUTS for n in names) or len(set(names)) != len(names):
            raise ParlaError(f"phoneme encoder: outputs are {' and/or '.join(OUTPUTS)} joined by '+', not {outputs!r}")
        self.names = outputs
        self.outputs = [OUTPUTS[n][0] for n in names]
        self.dim = sum(OUTPUTS[n][1] for n in names)
        data = model_bytes()
        if backend == "onnxruntime":
            ort = require("onnxruntime", "core")
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            opts.log_severity_level = 3
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the frame loop needs the cores
            self.session = ort.InferenceSession(with_output(data, HIDDEN), opts, providers=["CPUExecutionProvider"])
            self._run = self._run_ort
        else:
            ov = require("openvino", "openvino")
            core = ov.Core()
            model = core.read_model(model=data)
            model.add_outputs([HIDDEN])
            config: dict = {"INFERENCE_PRECISION_HINT": "f32"}  # not bf16: the features must match onnxruntime's
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            self.request = core.compile_model(model, "CPU", config).create_infer_request()
            self._run = self._run_ov

    def _run_ort(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = self.session.run(self.outputs, {"waveform": wav, "waveform_lengths": lengths})
        return np.concatenate([np.asarray(o, np.float32) for o in out], -1)

    def _run_ov(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = self.request.infer({"waveform": wav, "waveform_lengths": lengths})
        found = [next(v for k, v in out.items() if name in k.get_names()) for name in self.outputs]
        return np.concatenate([np.asarray(o, np.float32) for o in found], -1)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, np.float32).reshape(-1)
        if len(audio) > MAX_SECONDS * SAMPLE_RATE:
            raise ParlaError(f"phoneme encoder: a window is at most {MAX_SECONDS:g} s, got {len(audio) / 16e3:.1f} s")
        if len(audio) < HOP:
            audio = np.pad(audio, (0, HOP - len(audio)))
        h = self._run(audio[None], np.array([len(audio)], np.int64))[0]
        return np.asarray(h, np.float32)[: n_frames(len(audio))]

    @functools.cached_property
    def silence(self) -> np.ndarray:
        """(dim,) the features of digital silence (what a stream starts from), computed once per encoder."""
        return self(np.zeros(SAMPLE_RATE, np.float32))[FRAMES_PER_SECOND // 2]


def encode(encoder: PhonemeEncoder, audio: np.ndarray, window_s: float = WINDOW_S) -> np.ndarray:
    """Features of a whole clip of any length: windows of ``window_s`` overlapping by ``OVERLAP_S``, each frame
    taken from the window it is farthest inside (so every frame has ≥ 2 s of context on both sides where the clip
    has it). The last window ends at the clip's end, so every window but a short clip's one has the same length."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    total = n_frames(len(audio))
    win = int(min(window_s, MAX_SECONDS) * FRAMES_PER_SECOND) - 1  # a window of win * HOP samples: win + 1 frames
    if total <= win + 1:
        return encoder(audio)
    hop, half = win - int(OVERLAP_S * FRAMES_PER_SECOND), int(OVERLAP_S * FRAMES_PER_SECOND) // 2
    starts = list(range(0, total - 1 - win, hop)) + [total - 1 - win]
    out = np.empty((total, encoder.dim), np.float32)
    done = 0  # frames written so far
    for k, start in enumerate(starts):
        h = encoder(audio[start * HOP : (start + win) * HOP])
        hi = win + 1 if k == len(starts) - 1 else win + 1 - half
        out[done : start + hi] = h[done - start : hi]
        done = start + hi
    return out


class StreamingPhonemes:
    """Push audio chunks, get the features of every frame that has ``future_s`` of audio after it in the encoder's
    window (and up to ``past_s`` before it): a live source's front-end. Frames are computed in fixed blocks of
    ``every`` (one encoder run each, on the window from ``past_s`` before the block to ``future_s`` after it), so
    the output does not depend on how the audio is chunked. Bounded: about ``past_s + future_s`` of audio is kept."""

    def __init__(self, encoder: PhonemeEncoder, *, past_s: float = 2.0, future_s: float = 0.3, every: int = 2):
        if not 0 <= future_s <= MAX_SECONDS / 2 or not 0 < past_s <= MAX_SECONDS - future_s - 1:
            raise ParlaError("phoneme stream: need 0 ≤ future_s ≤ 15 s and 0 < past_s + future_s ≤ 29 s")
        self.encoder, self.every = encoder, max(1, int(every))
        self.future = int(round(future_s * FRAMES_PER_SECOND))
        self.past = int(round(past_s * FRAMES_PER_SECOND))
        self.buf = np.zeros(0, np.float32)  # audio from sample self.offset on
        self.offset = 0  # absolute sample index of buf[0]
        self.emitted = 0  # frames emitted so far
        self.silence = encoder.silence
        self._zeros: tuple[int, np.ndarray] | None = None  # (length of an all-zero window, its features)
        # Set while a burst of audio is pushed at once (a live reply's start): every frame ready then comes from one
        # window (its frames see as much future as the last one, or more), not one window per block.
        self.coarse = False

    @property
    def latency_samples(self) -> int:
        """Audio that must arrive after a frame's centre before that frame is emitted (at most)."""
        return (self.future + self.every + 1) * HOP

    def push(self, chunk: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate([self.buf, np.asarray(chunk, np.float32).reshape(-1)])
        heard = self.offset + len(self.buf)
        ready = heard // HOP - self.future  # frames whose window (to future_s after them) has fully arrived
        out = []
        if self.coarse and ready - self.emitted >= self.every:
            out.append(self._block(self.emitted + (ready - self.emitted) // self.every * self.every))
        while ready - self.emitted >= self.every:
            out.append(self._block(self.emitted + self.every))
        return np.concatenate(out) if out else np.zeros((0, self.encoder.dim), np.float32)

    def _block(self, upto: int) -> np.ndarray:
        first = self.emitted - self.past  # the window's first frame: before the stream's start, silence
        win = self.buf[max(0, first) * HOP - self.offset : (upto + self.future) * HOP - self.offset]
        if first < 0:  # one window length from the first block on: a runtime that compiles per shape compiles once
            win = np.concatenate([np.zeros(-first * HOP, np.float32), win])
        if win.any():
            out = self.encoder(win)
        else:  # digital silence throughout (an idle live face): the encoder's output for it, computed once
            if self._zeros is None or self._zeros[0] != len(win):
                self._zeros = (len(win), self.encoder(win))
            out = self._zeros[1]
        new = out[self.emitted - first : upto - first]
        self.emitted = upto
        keep = max(0, (self.emitted - self.past) * HOP)  # the next window starts past_s before the next block
        if keep > self.offset:
            self.buf = self.buf[keep - self.offset :]
            self.offset = keep
        return new


def ahead_stream(encoder: PhonemeEncoder) -> StreamingPhonemes:
    """The front-end of a source that delivers its audio ``ahead_latency_s()`` before it plays (a long file)."""
    return StreamingPhonemes(encoder, past_s=AHEAD_PAST_S, future_s=AHEAD_FUTURE_S, every=AHEAD_EVERY)


def ahead_latency_s() -> float:
    """Audio that ``ahead_stream`` needs after a frame's centre before it gives that frame."""
    return (int(round(AHEAD_FUTURE_S * FRAMES_PER_SECOND)) + AHEAD_EVERY + 1) * HOP / SAMPLE_RATE


class KnownPhonemes:
    """The front-end of audio that exists ahead of playback (a file, a TTS reply): the features of the whole clip,
    computed offline (``encode``), handed out as the audio is pushed, so that a file streamed in real time gets
    exactly the offline features. Past the clip's end the last frame repeats (the tail flushed after it)."""

    def __init__(self, features: np.ndarray, silence: np.ndarray) -> None:
        self.features, self.silence = np.asarray(features, np.float32), silence
        self.heard = 0
        self.emitted = 0

    @property
    def latency_samples(self) -> int:
        return HOP

    def push(self, chunk: np.ndarray) -> np.ndarray:
        self.heard += len(chunk)
        ready = max(0, (self.heard - HOP // 2) // HOP + 1)
        idx = np.minimum(np.arange(self.emitted, ready), len(self.features) - 1)
        self.emitted = max(self.emitted, ready)
        return self.features[idx]


class SegmentPhonemes:
    """The front-end of a stream made of known segments and digital silence between them (a TTS source: each
    reply exists whole when it starts): every segment is encoded offline when it is announced (``add``, before the
    audio that starts it is pushed), the silence between segments is the encoder's silence, and frames are handed
    out as the audio is pushed, with no look-ahead. Bounded: a segment is dropped once its audio has passed."""

    def __init__(self, encoder: PhonemeEncoder) -> None:
        self.encoder, self.silence = encoder, encoder.silence
        self.heard = 0
        self.emitted = 0
        self.segments: list[tuple[int, np.ndarray]] = []  # (first frame, features), in order

    @property
    def latency_samples(self) -> int:
        return HOP

    def add(self, start_sample: int, audio: np.ndarray) -> None:
        """A segment of ``audio`` that starts at stream sample ``start_sample`` (a multiple of HOP)."""
        self.segments.append((start_sample // HOP, encode(self.encoder, audio)[: len(audio) // HOP]))

    def push(self, chunk: np.ndarray) -> np.ndarray:
        self.heard += len(chunk)
        ready = max(self.emitted, (self.heard - HOP // 2) // HOP + 1)
        out = np.tile(self.silence, (ready - self.emitted, 1))
        for first, feats in self.segments:
            lo, hi = max(first, self.emitted), min(first + len(feats), ready)
            if lo < hi:
                out[lo - self.emitted : hi - self.emitted] = feats[lo - first : hi - first]
        self.emitted = ready
        self.segments = [(f, x) for f, x in self.segments if f + len(x) > ready]
        return out


def to_mel_rate(features: np.ndarray, n_mel: int) -> np.ndarray:
    """Encoder frames (50 Hz, frame k centred on sample 320 k) at the mel frame rate (100 Hz, frame m centred on
    sample 160 m): linear interpolation, clamped at the ends."""
    pos = np.arange(n_mel) / 2.0
    lo = np.minimum(np.floor(pos).astype(int), len(features) - 1)
    hi = np.minimum(lo + 1, len(features) - 1)
    frac = (pos - lo)[:, None].astype(np.float32)
    return features[lo] * (1 - frac) + features[hi] * frac


def phoneme_track(audio: np.ndarray, n_mel: int, spec: str, encoder=None) -> np.ndarray:
    """(n_mel, 256) phoneme-encoder features at the mel frame rate, computed as ``spec`` says: "offline" (30 s
    windows) or "stream:PAST:FUTURE" (the streaming encoder fed 40 ms chunks, as a live source feeds it)."""
    encoder = encoder or PhonemeEncoder()
    if spec == "offline":
        feats = encode(encoder, audio)
    elif spec.startswith("stream:"):
        _, past, future = spec.split(":")
        st = StreamingPhonemes(encoder, past_s=float(past), future_s=float(future))
        chunk = SAMPLE_RATE // 25
        tail = np.zeros(st.latency_samples, np.float32)  # the end of a stream: silence after it, as the synth pads
        padded = np.concatenate([audio, tail])
        feats = np.concatenate([st.push(padded[i : i + chunk]) for i in range(0, len(padded), chunk)])
        feats = feats[: n_frames(len(audio))]
    else:
        raise ParlaError(f"phoneme features: {spec!r} is not 'offline' or 'stream:PAST:FUTURE'")
    return to_mel_rate(feats, n_mel)
