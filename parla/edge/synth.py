"""The motion synthesizer: 16 kHz audio in, one ``FrameMotion`` per video frame out, stepwise with bounded state.

The one synthesizer of every path (``parla animate``/``demo``, ``parla stream``, ``Avatar``, bench, evaluation):
offline runs it as fast as it goes, live on the audio clock. Audio arrives in chunks of any size and each frame
is emitted as soon as the audio it depends on has arrived, so the output does not depend on the chunking:

- log-mel frames come from ``StreamingLogMel`` (identical to ``log_mel`` on the whole clip);
- the audio->lips net runs on the last ``MOTION_WINDOW`` mel frames; frame t is read once mel frame
  t + lookahead exists, so it sees exactly the look-ahead it was trained with (80 ms);
- the voiced/silent thresholds come from the last ``LEVEL_WINDOW_S`` seconds, the lips close and open on a
  ramp, the silence hold is a trailing mean, head motion an AR(2) process and blinks a renewal process, each
  stepped one frame at a time. Silence (nobody speaking) gives the idle animation: a still mouth at the photo's
  own gap (closed lips stay closed; ``FrameMotion.mouth_rest``), a calm head, breathing, blinks.
- ``lookahead_frames`` (a property of the source: a file or TTS reply exists ahead of playback, a microphone
  does not) holds each frame back that many frames, so that the lips start closing *before* a pause.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from parla.audio.io import SAMPLE_RATE
from parla.audio.mel import FRAMES_PER_SECOND, HOP, N_MELS, StreamingLogMel, speech_band
from parla.face.expression import ExpressionBasis
from parla.formats import MOTION_WINDOW
from parla.models.head_blink import BlinkModel, BlinkProcess, HeadModel, HeadProcess

LEVEL_WINDOW_S = 10.0  # seconds of speech level behind the voiced/silent thresholds
ABS_SILENCE_DB = -25.0  # speech-band level under which a frame is silent whatever the recent range (floor: -32.7)
BREATH_HZ = 0.25  # idle breathing: a slow rise and fall of the head
BREATH_PX = 0.6  # crop pixels (ty) at the peak of a breath
CLOSE_RAMP = 3  # frames for the lips to close or open at a pause
MIN_PAUSE_FRAMES = 2  # silent frames in a row that make a pause worth closing the lips for ahead of time
# Look-ahead (video frames) for audio that exists ahead of playback (a file, a TTS reply): enough to see a pause
# of MIN_PAUSE_FRAMES coming CLOSE_RAMP frames ahead, so that the lips are closed as it begins.
FILE_LOOKAHEAD_FRAMES = CLOSE_RAMP + MIN_PAUSE_FRAMES - 1
MAX_COEFF_STD = 3.0  # lip/jaw coefficients are capped at this many training standard deviations
# The closure output's probability from which the lips start to close, and at which they touch
CLOSURE_P = (0.3, 0.6)
VOICED_SMOOTH = 5  # frames (200 ms at 25 fps) of voiced/silent behind the head's innovation scale
EMOTIONS = ("neutral", "happy", "sad", "surprised")


@dataclass
class MotionSettings:
    """What a model folder's config.json says about synthesis (numpy only)."""

    mel_mean: np.ndarray
    mel_std: np.ndarray
    articulation: float  # articulation_gain (fitted: the regressor under-articulates) x render_gain (calibrated)
    silence_hold_s: float  # in pauses the lips hold their trailing mean over this long (0: off)
    head_silent_scale: float
    head: HeadModel
    blink: BlinkModel
    basis: ExpressionBasis
    lookahead: int  # mel frames of future audio the lips net sees
    receptive_field: int  # mel frames the net's output depends on
    phonemes: dict | None = None  # the phoneme front-end (config.json "phonemes"): its features follow the mel
    close_pauses: bool = True  # close the lips in pauses found by the speech level (off: the net's mouth alone)
    # 0: every silent frame starts closing (a log-mel net); else only silences at least this long (a phoneme net,
    # whose mouth already follows the words: short level dips inside speech are stops, not pauses)
    min_pause_s: float = 0.0
    quiet_pauses: bool = False  # pauses are silences below the absolute level only (not dips relative to the speech)
    # A frame shows the lips the net reads this many seconds after its instant (config "lead_s"; costs as much
    # audio latency live). 0: on source-held-out clips every lead lowered the correlation (0.463 at 0,
    # 0.431 at 20 ms, 0.388 at 40 ms; benchmarks/motion_cv.py --leads): the net's mouth is not late.
    lead_s: float = 0.0

    @property
    def mel_step(self) -> int:
        """Mel frames one run of the lips net reads exactly (its window less the receptive field and look-ahead)."""
        return max(1, MOTION_WINDOW - 1 - self.lookahead - self.receptive_field)

    @property
    def known_chunk_samples(self) -> int:
        """Audio to push at a time when it exists ahead of playback (a file rendered as fast as the device goes):
        one run of the lips net per push instead of one per 40-ms chunk, the same frames (chunk-invariant)."""
        return self.mel_step * HOP

    @classmethod
    def from_folder(cls, folder) -> MotionSettings:
        """From a ``parla.modelfolder.ModelFolder``."""
        c = folder.config
        dil = c["motion"].get("dilations", (1, 2, 4, 8, 1, 2))
        return cls(
            np.asarray(c["mel_mean"], np.float32),
            np.asarray(c["mel_std"], np.float32),
            float(c.get("articulation_gain", 1.0)) * float(c.get("render_gain", 1.0)),
            float(c.get("silence_hold_s", 0.0)),
            float(c.get("head_silent_scale", 1.0)),
            HeadModel.from_dict(c["head"]),
            BlinkModel(**c["blink"]),
            folder.basis,
            int(c["motion"].get("lookahead", 8)),
            5 + 2 * sum(dil),
            c.get("phonemes"),
            bool(c.get("close_pauses", True)),
            float(c.get("min_pause_s", 0.0)),
            bool(c.get("quiet_pauses", False)),
            float(c.get("lead_s", 0.0)),
        )


@dataclass
class FrameMotion:
    index: int  # video frame number (time = index / fps)
    coeffs: np.ndarray  # (K,) expression coefficients (basis units)
    pose: np.ndarray  # (6,) yaw, pitch, roll, tx, ty, log-scale
    blink: float  # eye closure 0..1
    mouth_close: float  # 0..1: the lips meet (a /p b m/ of known timing, the net's closure output)
    voiced: bool
    z: np.ndarray  # (K,) the lips net's standardised output, before gains
    mouth_rest: float = 0.0  # 0..1: a pause: the lips go to the photo's own gap (``ExpressionBasis.drive``)


@dataclass
class _Heard:
    """A frame whose audio (and look-ahead) has arrived, waiting for ``lookahead_frames`` more."""

    index: int
    z: np.ndarray
    voiced: bool
    silent: bool
    quiet: bool  # below the absolute silence level (digital silence, a muted microphone, a gap between replies)


class MotionSynth:
    """Push 16 kHz audio chunks, pull the frames whose audio is complete. Memory is bounded whatever the length."""

    def __init__(
        self,
        settings: MotionSettings,
        run_lips,
        *,
        fps: float = 25.0,
        seed: int = 0,
        pose_scale: float = 1.0,
        emotion: np.ndarray | None = None,
        lookahead_frames: int = 0,
        phonemes=None,
        closures: list[tuple[float, float]] | None = None,
    ) -> None:
        """``run_lips``: (1, C, MOTION_WINDOW) normalised inputs -> (1, K, MOTION_WINDOW) standardised coeffs.
        ``phonemes``: the phoneme front-end when the model has one (``parla.audio.phonemes.StreamingPhonemes``
        for a live source, ``KnownPhonemes`` for audio that exists ahead), with a ``silence`` feature row.
        ``closures``: (start, end) seconds where the lips must touch, when the speech's phoneme timing is known
        (a TTS's /p b m/): those frames close the lips whatever the net says."""
        self.s, self.run_lips, self.fps = settings, run_lips, fps
        self.pose_scale, self.emotion, self.lookahead_frames = pose_scale, emotion, int(lookahead_frames)
        rng = np.random.default_rng(seed)
        self.head = HeadProcess(settings.head, rng, scale=pose_scale, silent_scale=settings.head_silent_scale)
        self.blink = BlinkProcess(settings.blink, fps, rng)
        self.mel = StreamingLogMel()
        self.closures = sorted(closures or [])
        self.rests: list[list[float]] = []  # [start, end) seconds known to hold no speech (live: between replies)
        self.phonemes = phonemes  # None with a phoneme model: the caller pushes joined features (``push_mel``)
        rest = np.full(N_MELS, np.log(1e-5))  # digital silence (extra input channels: their training mean)
        extra = settings.mel_mean[N_MELS:]
        rest = np.concatenate([rest, phonemes.silence if phonemes is not None else extra])
        if phonemes is not None:
            self._mel_q = np.zeros((0, N_MELS), np.float32)  # mel frames waiting for their phoneme features
            self._ph_q = np.zeros((0, phonemes.silence.shape[0]), np.float32)  # phoneme frames from _ph_first on
            self._ph_first = 0
            self._n_joined = 0
        silence = ((rest - settings.mel_mean) / settings.mel_std).astype(np.float32)
        self.window = np.tile(silence[:, None], (1, MOTION_WINDOW))  # starts as digital silence
        self._band = speech_band()
        silent_db = 10 * math.log10(float(self._band.sum()) * 1e-5 + 1e-10)
        self.energy = deque([silent_db] * MOTION_WINDOW, maxlen=MOTION_WINDOW)  # speech-band dB of the window
        self.n_mel = 0  # mel frames pushed
        self.z: np.ndarray | None = None  # last net output (K, W)
        self.next_heard = 0  # next frame to read off the net
        self.heard: deque[_Heard] = deque()  # read, not yet emitted (at most lookahead_frames + 1)
        self.level: deque[float] = deque(maxlen=int(LEVEL_WINDOW_S * fps))
        self.hold: deque[np.ndarray] = deque(maxlen=max(1, int(settings.silence_hold_s * fps)))
        self.voiced_hist: deque[float] = deque(maxlen=VOICED_SMOOTH)
        self.close: float | None = None  # set by the first frame: at rest if the stream starts in a pause, else open
        self.min_pause = max(1, int(round(settings.min_pause_s * fps))) if settings.min_pause_s > 0 else 0
        self.silent_run = self.min_pause  # silent frames in a row up to the last emitted one (a stream starts at rest)
        self.timer = None  # a StageTimer, set by the engine

    @property
    def latency_samples(self) -> int:
        """Audio that must arrive after a frame's instant before that frame can be produced."""
        ahead = (self.s.lookahead + 1) * HOP + 256  # the net's look-ahead + the STFT half-window (N_FFT / 2)
        if self.phonemes is not None:  # the phoneme frame after the last mel frame the net reads, and its future
            ahead = max(ahead, (self.s.lookahead + 2) * HOP + self.phonemes.latency_samples + 2 * HOP)
        return ahead + int(math.ceil((self.lookahead_frames / self.fps + self.s.lead_s) * SAMPLE_RATE))

    def push(self, chunk: np.ndarray) -> list[FrameMotion]:
        if self.s.phonemes is not None and self.phonemes is None:
            from parla.errors import ParlaError

            raise ParlaError(
                "this model's lips read phoneme features: build the synthesizer with Avatar.new_motion (or pass "
                "phonemes=, see parla.audio.phonemes), or push joined features with push_mel"
            )
        t0 = time.perf_counter()
        chunk = np.asarray(chunk, np.float32)
        mel = self.mel.push(chunk)
        if self.phonemes is not None:
            mel = self._join(mel, self.phonemes.push(chunk))
        if self.timer is not None:
            self.timer.add("audio_features", (time.perf_counter() - t0) * 1e3)
        return self.push_mel(mel)

    def _join(self, mel: np.ndarray, ph: np.ndarray) -> np.ndarray:
        """Mel frames (100 Hz) followed by the phoneme features at their instant (50 Hz, interpolated as
        ``parla.audio.phonemes.to_mel_rate`` does), for every mel frame whose phoneme frames have arrived."""
        self._mel_q = np.concatenate([self._mel_q, mel])
        self._ph_q = np.concatenate([self._ph_q, ph])
        n_ph = self._ph_first + len(self._ph_q)  # phoneme frames arrived
        m = self._n_joined + np.arange(len(self._mel_q))
        m = m[(m + 1) // 2 < n_ph]  # frame m needs phoneme frames m // 2 and, when m is odd, m // 2 + 1
        if not len(m):
            return np.zeros((0, N_MELS + self._ph_q.shape[1]), np.float32)
        lo = m // 2 - self._ph_first
        hi = (m + 1) // 2 - self._ph_first
        frac = ((m % 2) * 0.5)[:, None].astype(np.float32)
        feats = self._ph_q[lo] * (1 - frac) + self._ph_q[hi] * frac
        out = np.concatenate([self._mel_q[: len(m)], feats], 1)
        self._mel_q = self._mel_q[len(m) :]
        self._n_joined += len(m)
        drop = self._n_joined // 2 - self._ph_first  # phoneme frames no later mel frame needs
        self._ph_q, self._ph_first = self._ph_q[drop:], self._ph_first + drop
        return out

    def push_mel(self, mel: np.ndarray) -> list[FrameMotion]:
        """Log-mel frames (M, n) as ``push`` computes them (the first N_MELS columns are the log-mel; feature
        experiments may append more, which ``run_lips`` and the mel normalisation must then expect)."""
        out: list[FrameMotion] = []
        # A long chunk is taken in pieces, so that every frame is read where the window holds its whole receptive
        # field: the output then does not depend on how the audio was chunked.
        step = self.s.mel_step
        for i in range(0, len(mel), step):
            self._add_mel(mel[i : i + step])
            self._hear()
            out += self._emit()
        return out

    def flush(self, n_samples: int) -> list[FrameMotion]:
        """End of input after ``n_samples`` samples in all: the remaining frames up to the audio's length, their
        look-ahead being the silence after it."""
        n = int(round(n_samples / SAMPLE_RATE * self.fps))
        tail = self.push(np.zeros(self.latency_samples + SAMPLE_RATE // 10, np.float32))
        return [fm for fm in tail if fm.index < n]

    def _add_mel(self, mel: np.ndarray) -> None:
        norm = ((mel - self.s.mel_mean) / self.s.mel_std).T.astype(np.float32)
        k = min(len(mel), MOTION_WINDOW)
        self.window = np.concatenate([self.window[:, k:], norm[:, -k:]], axis=1)
        for row in mel:
            self.energy.append(10 * math.log10(float(np.exp(row[: len(self._band)][self._band]).sum()) + 1e-10))
        self.n_mel += len(mel)
        t0 = time.perf_counter()
        self.z = np.asarray(self.run_lips(self.window[None]))[0]  # (K, W)
        if self.timer is not None:
            self.timer.add("motion", (time.perf_counter() - t0) * 1e3)

    def _hear(self) -> None:
        """Read every frame whose net look-ahead has arrived: its lips output and its voiced/silent class."""
        while True:
            t_mel = (self.next_heard / self.fps + self.s.lead_s) * FRAMES_PER_SECOND
            if math.ceil(t_mel) + self.s.lookahead > self.n_mel - 1:
                return
            # Mel frame m sits at index m - (n_mel - W) of the window; the net's output at index i has seen the
            # window up to i + lookahead (it pads the end internally), so exact outputs end at W - 1 - lookahead.
            pos = t_mel - (self.n_mel - MOTION_WINDOW)
            lo = int(math.floor(pos))
            frac = pos - lo
            assert self.z is not None  # _add_mel ran before any frame can be heard
            z = self.z[:, lo] * (1 - frac) + self.z[:, min(lo + 1, MOTION_WINDOW - 1)] * frac
            e_lo = max(0, int(round(pos - FRAMES_PER_SECOND / self.fps / 2)))
            e_hi = max(e_lo + 1, int(round(pos + FRAMES_PER_SECOND / self.fps / 2)))
            energy = list(self.energy)[e_lo:e_hi]
            self.heard.append(_Heard(self.next_heard, z, *self._classify(float(np.mean(energy)))))
            self.next_heard += 1

    def _emit(self) -> list[FrameMotion]:
        out = []
        while len(self.heard) > self.lookahead_frames:
            out.append(self._frame(self.heard.popleft()))
        return out

    def _frame(self, h: _Heard) -> FrameMotion:
        s = self.s
        # a mouth no wider than the training speakers' (a loud syllable drove the jaw to 4.5 std for two frames:
        # a stretched-teeth burst, eval p16 x s06 frames 56-57)
        k = s.basis.n_components
        coeffs = np.clip(h.z[:k] * s.articulation, -MAX_COEFF_STD, MAX_COEFF_STD) * s.basis.stds
        # close before a pause that is coming within the look-ahead (a single silent frame inside speech is not a
        # pause), open when the speech resumes
        quiet = s.quiet_pauses
        ahead = [x.quiet if quiet else x.silent for x in itertools.islice(self.heard, self.lookahead_frames)]
        h_silent = h.quiet if quiet else h.silent
        self.silent_run = self.silent_run + 1 if h_silent else 0
        if self.min_pause:  # a pause is a silence of min_pause frames, seen so far or through the look-ahead
            run = self.silent_run + (next((j for j, x in enumerate(ahead) if not x), len(ahead)) if h_silent else 0)
            # ... and ends as early as the look-ahead shows the sound coming back within the ramp: the lips part
            # before the first sound, as a speaker's do, instead of CLOSE_RAMP frames after it
            in_pause = run >= self.min_pause and all(ahead[:CLOSE_RAMP])
            pause_ahead = len(ahead) >= self.min_pause and any(
                all(ahead[j : j + self.min_pause]) for j in range(min(CLOSE_RAMP, len(ahead) - self.min_pause + 1))
            )
        else:
            in_pause = h_silent
            pause_ahead = any(all(ahead[j : j + MIN_PAUSE_FRAMES]) for j in range(len(ahead) - MIN_PAUSE_FRAMES + 1))
        target = 1.0 if s.close_pauses and (in_pause or pause_ahead) or self._resting(h.index / self.fps) else 0.0
        if self.close is None:  # audio that starts in speech (a file cut mid-sentence) finds the lips already moving
            self.close = target
        else:
            self.close += float(np.clip(target - self.close, -1 / (CLOSE_RAMP + 1), 1 / (CLOSE_RAMP + 1)))
        self.hold.append(coeffs)
        if s.silence_hold_s > 0:
            coeffs = coeffs + self.close * (np.mean(self.hold, axis=0) - coeffs)
        if self.emotion is not None:
            coeffs = coeffs + self.emotion
        self.voiced_hist.append(float(h.voiced))
        voiced = float(np.mean(self.voiced_hist))
        pose = self.head.step(voiced)
        breath = math.sin(2 * math.pi * BREATH_HZ * h.index / self.fps)
        pose[4] += BREATH_PX * breath * (1.0 - voiced) * self.pose_scale  # breathing shows when the face is still
        close = 0.0
        if self._touching(h.index / self.fps):
            close = 1.0
        elif len(h.z) > k:  # the net's closure output: the lips touch now (/p b m/, a pause), at once
            p = 1.0 / (1.0 + math.exp(-float(np.clip(h.z[k], -30, 30))))
            close = float(np.clip((p - CLOSURE_P[0]) / (CLOSURE_P[1] - CLOSURE_P[0]), 0.0, 1.0))
        return FrameMotion(h.index, coeffs, pose, self.blink.step(), close, h.voiced, h.z, self.close)

    def snapshot(self) -> MotionSynth:
        """A copy of the synthesizer's state (audio features, net window, head, blinks, pause ramp, random state) that
        goes on independently; models, settings and the timer are shared. A live session keeps recent snapshots so
        that it can take back audio it fed ahead: silence, when a reply arrives, or a reply, when it is cut off."""
        ph = self.phonemes
        zeros = getattr(ph, "_zeros", None)  # the encoder's output for silence: never changed, only replaced
        shared = [self.run_lips, self.s, self.timer, self.emotion, self._band, getattr(ph, "encoder", None), zeros]
        return copy.deepcopy(self, {id(x): x for x in shared if x is not None})

    def add_utterance(self, start_sample: int, audio: np.ndarray) -> None:
        """An utterance known whole as it starts at this stream sample (a TTS reply): a phoneme front-end that
        takes segments encodes it now; any other front-end reads it as it is pushed."""
        if hasattr(self.phonemes, "add"):
            self.phonemes.add(start_sample, audio)

    def add_closures(self, closures: list[tuple[float, float]]) -> None:
        """More (start, end) seconds where the lips must touch (an utterance that starts during a stream)."""
        self.closures = sorted(self.closures + list(closures))

    def rest_from(self, t: float) -> None:
        """From ``t`` seconds on nobody speaks (a reply ended or was cut off): the lips go to rest at once instead of
        after a pause's length of silence, until ``speak_from``."""
        if not self.rests or self.rests[-1][1] < math.inf:
            self.rests.append([t, math.inf])

    def speak_from(self, t: float) -> None:
        """A reply starts at ``t`` seconds: the known rest ends there."""
        if self.rests and self.rests[-1][1] == math.inf:
            self.rests[-1][1] = max(t, self.rests[-1][0])

    def _resting(self, t: float) -> bool:
        while self.rests and self.rests[0][1] <= t:
            self.rests.pop(0)
        return bool(self.rests) and self.rests[0][0] <= t

    def _touching(self, t: float) -> bool:
        """A known closure covers this frame (its interval, widened by half a frame on each side)."""
        half = 0.5 / self.fps
        while self.closures and self.closures[0][1] + half < t:  # frames come in order: drop what is past
            self.closures.pop(0)
        return any(a - half <= t <= b + half for a, b in self.closures[:4])

    def _classify(self, energy: float) -> tuple[bool, bool, bool]:
        """(voiced, silent, quiet) of a frame's speech-band level: against the recent range, and quiet under the
        absolute silence level (then also silent)."""
        self.level.append(energy)
        lo, hi = np.percentile(self.level, [5, 95]) if len(self.level) >= 10 else (energy, energy)
        if energy < ABS_SILENCE_DB:
            return False, True, True
        if hi - lo < 12.0:
            return energy > lo, False, False
        return energy > lo + 0.6 * (hi - lo), energy < lo + 0.2 * (hi - lo), False


def emotion_vector(spec: str | None, basis: ExpressionBasis) -> np.ndarray | None:
    """An expression offset from a name (neutral, happy, sad, surprised) or K comma-separated coefficients
    in units of each component's training std."""
    from parla.errors import ParlaError

    if spec is None or spec == "neutral":
        return None
    if spec in EMOTIONS:
        return basis.encode(_emotion_offsets(spec, basis.mean_shape.astype(np.float64)))
    try:
        v = np.array([float(x) for x in spec.split(",")])
    except ValueError as e:
        raise ParlaError(f"--emotion: expected one of {', '.join(EMOTIONS)} or {basis.n_components} numbers") from e
    if len(v) != basis.n_components or not np.all(np.isfinite(v)):
        raise ParlaError(f"--emotion: expected {basis.n_components} comma-separated finite numbers, got {spec!r}")
    return v * basis.stds


def _emotion_offsets(name: str, shape: np.ndarray) -> np.ndarray:
    """Landmark displacements of a mild expression, in the canonical frame (units: fraction of face width)."""
    w = shape[:, 0].max() - shape[:, 0].min()
    d = np.zeros_like(shape)
    if name == "happy":  # mouth corners up and out, cheeks lift the lower eyelids a little
        d[48] += (-0.03, -0.035)
        d[54] += (0.03, -0.035)
        d[[49, 53, 59, 55]] += (0.0, -0.015)
        d[[40, 41, 46, 47]] += (0.0, -0.008)
    elif name == "sad":  # corners down, inner brows up
        d[[48, 54]] += (0.0, 0.03)
        d[[21, 22]] += (0.0, -0.03)
    elif name == "surprised":  # brows up, jaw slightly open
        d[17:27] += (0.0, -0.04)
        d[[56, 57, 58, 65, 66, 67, 7, 8, 9]] += (0.0, 0.04)
    return d * w
