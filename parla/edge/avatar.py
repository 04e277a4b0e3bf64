"""The Python API of the on-device runtime.

    from parla.edge import Avatar
    with Avatar.from_image("portrait.jpg", config="x86-cpu") as avatar:
        for frame in avatar.stream(chunks):           # 16 kHz float32 chunks in, RGB frames out
            ...
        avatar.render("speech.wav", "out.mp4")       # a whole file, as fast as the device goes
        stats = avatar.run(FileSource("speech.wav"), WebRTCSink(fps=25))   # real time, the kiosk page
        avatar.push_audio(tts_chunk, 24_000); avatar.flush()                # a conversation (parla.edge.live):
        async for frame in avatar.frames(): ...                             # frames with their audio, idle between

Each Avatar owns its runtime sessions (and a sink or source handed to ``run`` is closed by it); use it as a
context manager or call ``close()``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from parla.audio.io import SAMPLE_RATE
from parla.edge.backends.base import Backend
from parla.edge.config import RuntimeConfig, load_config
from parla.edge.render import FrameRenderer, Portrait, StageTimer, content_credentials, provenance
from parla.edge.synth import FILE_LOOKAHEAD_FRAMES, MotionSettings, MotionSynth, emotion_vector
from parla.face.detect import release as release_face_models

if TYPE_CHECKING:
    from parla.audio.phonemes import PhonemeEncoder
    from parla.edge.live import LiveFrame, LiveSession


class Avatar:
    """A portrait on a runtime config's backend: the one engine (``MotionSynth`` + ``FrameRenderer``) behind
    ``parla animate``, ``demo``, ``stream``, bench and evaluation."""

    def __init__(
        self,
        portrait: Portrait,
        config: RuntimeConfig,
        *,
        seed: int = 0,
        pose_scale: float = 1.0,
        emotion: str | None = None,
        watermark: bool = True,
        badge: bool = False,
        credentials: bool = True,
        net: str = "student",
        models=None,
    ) -> None:
        from parla.edge.backends import open_models
        from parla.modelfolder import ModelFolder

        self.portrait, self.config, self.seed, self.pose_scale = portrait, config, seed, pose_scale
        self.refiner: Backend
        self.lips: Backend
        self.refiner, self.lips = models or open_models(config, net=net)
        self._encoder: PhonemeEncoder | None = None  # a model with a phoneme front-end: opened here, below
        self._live: LiveSession | None = None
        try:
            self.settings = MotionSettings.from_folder(ModelFolder(config.model))
            self.emotion = emotion_vector(emotion, self.settings.basis)
            if self.settings.phonemes is not None:  # loaded with the avatar, not on the first reply (0.3-0.4 s)
                from parla.audio.phonemes import PhonemeEncoder, outputs_for

                backend = "openvino" if config.backend == "openvino" else "onnxruntime"
                outputs = outputs_for(self.settings.phonemes)
                self._encoder = PhonemeEncoder(backend, threads=config.threads, outputs=outputs)
        except BaseException:
            self.close()
            raise
        self.version = self.refiner.meta.get("parla.version", "unknown")
        self.stages, self.metadata = provenance(self.version, watermark=watermark, badge=badge)
        self.credentials = credentials  # a C2PA manifest in every file written (parla.media.credentials)

    @classmethod
    def from_image(
        cls,
        image: str | os.PathLike | np.ndarray,
        config: str | os.PathLike | RuntimeConfig = "x86-cpu",
        *,
        overrides: dict | None = None,
        face_index: int | None = None,
        **kwargs,
    ) -> Avatar:
        """A portrait file or an RGB array; ``config``: a target name, a YAML path or a RuntimeConfig."""
        from parla.edge.backends import open_models

        cfg = config if isinstance(config, RuntimeConfig) else load_config(config, overrides)
        name = "portrait"
        if not isinstance(image, np.ndarray):
            from parla.media.image import load_image

            name, image = str(image), load_image(image)
        models = kwargs.pop("models", None) or open_models(cfg, net=kwargs.get("net", "student"))
        try:
            portrait = Portrait.from_image(image, int(models[0].input_shape[-1]), face_index=face_index, name=name)
        except BaseException:
            for m in models:
                m.close()
            raise
        finally:
            from parla.edge.engine import trim_heap

            release_face_models()  # the portrait is built: a running avatar needs no detector (70 MB resident)
            trim_heap()
        return cls(portrait, cfg, models=models, **kwargs)

    @classmethod
    def from_camera(
        cls, config: str | os.PathLike | RuntimeConfig = "x86-cpu", *, overrides: dict | None = None, **kwargs
    ) -> Avatar:
        """Capture the portrait with the config's camera (picamera2 on a Pi, OpenCV elsewhere)."""
        from parla.edge.camera import capture_portrait

        cfg = config if isinstance(config, RuntimeConfig) else load_config(config, overrides)
        return cls.from_image(capture_portrait(cfg.camera), cfg, **kwargs)

    # building blocks ------------------------------------------------------------------------------------------
    def new_motion(
        self,
        *,
        lookahead_frames: int = 0,
        known_audio: np.ndarray | None = None,
        closures: list[tuple[float, float]] | None = None,
        lead_s: float = 0.0,
        segments: bool = False,
    ) -> MotionSynth:
        """The synthesizer for one clip or stream. ``known_audio``: the whole audio when it exists ahead of playback
        (a file, a TTS reply), which a phoneme front-end then encodes offline, with full context; ``closures``:
        where the lips must touch, when the phoneme timing is known (a TTS's /p b m/); ``lead_s``: how far ahead of
        playback a source delivers audio it does not hold whole (see ``ahead_s``); ``segments``: the source announces
        each utterance whole as it starts (``add_utterance``) and is silent between them (a TTS source)."""
        return MotionSynth(
            self.settings,
            self.lips.run,
            fps=self.config.video.fps,
            seed=self.seed,
            pose_scale=self.pose_scale,
            emotion=self.emotion,
            lookahead_frames=lookahead_frames,
            phonemes=self._phonemes(known_audio, lead_s, segments),
            closures=closures,
        )

    def _phonemes(self, known_audio: np.ndarray | None, lead_s: float = 0.0, segments: bool = False):
        """The phoneme front-end for a clip or stream: offline features of audio known whole; offline features
        of each utterance as it starts (``segments``: a TTS source); the offline windows' context for a source ahead
        of playback by ``lead_s`` ≥ ``ahead_s`` (a long file); else a live source's sliding window with the model's
        published look-ahead (a microphone)."""
        ph = self.settings.phonemes
        if ph is None:
            return None
        from parla.audio import phonemes

        encoder = self._encoder
        assert encoder is not None  # opened with the avatar when the model has phoneme settings
        if known_audio is not None:
            feats = phonemes.encode(encoder, known_audio)
            return phonemes.KnownPhonemes(feats, encoder.silence)
        if segments:
            return phonemes.SegmentPhonemes(encoder)
        if lead_s >= self.ahead_s:
            return phonemes.ahead_stream(encoder)
        return phonemes.StreamingPhonemes(encoder, past_s=ph["past_s"], future_s=ph["future_s"])

    def lead_for(self, source) -> float:
        """How early ``source``, whose audio exists ahead of playback, should deliver it: the synthesizer's file
        look-ahead when the source holds its audio whole (the phoneme features are computed at once), else
        ``ahead_s``."""
        if source.known_audio is not None:
            return FILE_LOOKAHEAD_FRAMES / self.config.video.fps
        return self.ahead_s

    @property
    def ahead_s(self) -> float:
        """How early a source whose audio exists ahead of playback (a file) should deliver it: the synthesizer's
        file look-ahead, and with a phoneme front-end the future audio it reads for such a source (2.5 s), so that
        frames come out as their audio plays."""
        lead = FILE_LOOKAHEAD_FRAMES / self.config.video.fps
        if self.settings.phonemes is not None:
            from parla.audio.phonemes import ahead_latency_s

            lead += ahead_latency_s() + self.config.audio.chunk_ms / 1000
        return lead

    def new_renderer(
        self, timer: StageTimer | None = None, *, stages: bool = True, realtime: bool = False
    ) -> FrameRenderer:
        """``realtime``: frames for a live stream, which trades a large photo's resampling for time (bilinear above
        800², ``parla.face.composite``); else every frame at full quality, as a file is rendered."""
        return FrameRenderer(
            self.portrait, self.settings.basis, self.refiner, self.stages if stages else (), timer, realtime=realtime
        )

    # the three ways to drive it -------------------------------------------------------------------------------
    def stream(
        self,
        chunks: Iterable[np.ndarray],
        *,
        flush: bool = True,
        lookahead_frames: int = 0,
        known_audio: np.ndarray | None = None,
        closures: list[tuple[float, float]] | None = None,
        realtime: bool = False,
    ) -> Iterator[np.ndarray]:
        """Frames for 16 kHz float32 chunks, each frame as soon as its audio (and the model's look-ahead) is in.
        With ``flush`` the end of the input is padded with silence so that the last frames come out too.
        ``known_audio``: the whole input, when it exists ahead (see ``new_motion``); ``realtime``: frames shown
        live, resampled for time on a large photo (``new_renderer``)."""
        motion = self.new_motion(lookahead_frames=lookahead_frames, known_audio=known_audio, closures=closures)
        renderer = self.new_renderer(realtime=realtime)
        n_samples = 0
        for chunk in chunks:
            n_samples += len(chunk)
            for fm in motion.push(np.asarray(chunk, np.float32)):
                yield renderer.render(fm)
        if flush:
            for fm in motion.flush(n_samples):
                yield renderer.render(fm)

    def render(
        self,
        audio: str | os.PathLike | np.ndarray,
        out: str | os.PathLike,
        *,
        show: bool = False,
        lookahead_frames: int = FILE_LOOKAHEAD_FRAMES,
        closures: list[tuple[float, float]] | None = None,
    ) -> Path:
        """A whole audio file (or 16 kHz array) to an mp4 with the audio muxed, as fast as the device goes; the
        whole file exists ahead of playback, so the synthesizer looks ``lookahead_frames`` ahead. ``closures``:
        see ``new_motion``."""
        from parla.audio import load_audio
        from parla.files import check_output
        from parla.media.video import VideoWriter
        from parla.progress import progress

        check_output(out)
        samples = load_audio(audio) if not isinstance(audio, np.ndarray) else np.asarray(audio, np.float32)
        if len(samples) == 0:
            from parla.errors import EmptyAudioError

            raise EmptyAudioError("audio: no samples to animate")
        n = int(round(len(samples) / SAMPLE_RATE * self.config.video.fps))
        chunk = self.settings.known_chunk_samples  # the whole file is here: one lips-net run per push
        chunks = (samples[i : i + chunk] for i in range(0, len(samples), chunk))
        with (
            VideoWriter(
                out,
                self.config.video.fps,
                audio=samples,
                metadata=self.metadata,
                credentials=content_credentials(self.metadata, self.credentials),
            ) as writer,
            progress(n, "rendering", enabled=show, unit="frame") as bar,
        ):
            frames = self.stream(chunks, lookahead_frames=lookahead_frames, known_audio=samples, closures=closures)
            for frame in frames:
                writer.write(frame)
                bar.update(1)
        return Path(out)

    def run(self, source, sink, *, max_seconds: float | None = None):
        """Real time: the threaded engine with a bounded queue and frame dropping. Returns its StreamStats. The
        synthesizer looks as far ahead as the source delivers ahead of playback (``source.lead_s``)."""
        from parla.edge.engine import StreamEngine

        known = source.known_audio if source.lead_s > 0 else None  # a source that is ahead of playback
        held = min(FILE_LOOKAHEAD_FRAMES, round(source.lead_s * self.config.video.fps))  # frames held for a pause
        motion = self.new_motion(
            lookahead_frames=held, known_audio=known, lead_s=source.lead_s, segments=source.segments
        )
        engine = StreamEngine(
            source,
            motion,
            self.new_renderer(realtime=True),
            sink,
            fps=self.config.video.fps,
            queue_frames=self.config.video.queue_frames,
            max_seconds=max_seconds,
        )
        return engine.run()

    # a live conversation: speech pushed as it comes, frames on the video clock ------------------------------
    def live(self, *, sample_rate: int = SAMPLE_RATE, paced: bool = True, **kwargs) -> LiveSession:
        """A new live session on this avatar (``parla.edge.live``); the avatar's own ``push_audio``, ``flush``,
        ``interrupt`` and ``frames`` use the one opened first (at 16 kHz unless opened here first)."""
        from parla.edge.live import LiveSession

        session = LiveSession(self, sample_rate=sample_rate, paced=paced, **kwargs)
        if self._live is None:
            self._live = session
        return session

    def _session(self) -> LiveSession:
        return self._live if self._live is not None else self.live()

    def push_audio(self, samples, sample_rate: int) -> None:
        """Speech as it comes (a TTS chunk, any rate, int16 or float32): see ``parla.edge.live``."""
        self._session().push_audio(samples, sample_rate)

    def flush(self) -> None:
        """The reply is complete: its last frames come out, then the face idles."""
        self._session().flush()

    def interrupt(self) -> None:
        """Cut the reply off: from the next frame on the face says nothing more of it and idles."""
        self._session().interrupt()

    def frames(self) -> AsyncIterator[LiveFrame]:
        """The live frames, one per 1/fps, each with the audio that plays with it (``LiveFrame``)."""
        return self._session().frames()

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
        for m in (self.refiner, self.lips):
            m.close()

    def __enter__(self) -> Avatar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def animate(
    portrait: str | os.PathLike,
    audio: str | os.PathLike | np.ndarray | None,
    output: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    fps: float = 25.0,
    seed: int = 0,
    pose_scale: float = 1.0,
    emotion: str | None = None,
    face_index: int | None = None,
    device: str | None = None,
    net: str | None = None,
    watermark: bool = True,
    badge: bool = False,
    credentials: bool = True,
    show: bool = True,
    lookahead_frames: int = FILE_LOOKAHEAD_FRAMES,
    text: str | None = None,
    voice: str = "en-us",
    backend: str = "auto",
) -> Path:
    """``parla animate``: the engine, as fast as it goes, into an mp4 at the photo's resolution with the speech
    muxed. Same seed -> same video. ``backend``: an edge runtime (``auto``, the default: the fastest installed;
    ``onnxruntime``, ``openvino``, ``tflite``: the INT8 student, no torch needed) or ``torch`` (the FP32 reference,
    ``net`` teacher, the default, or student; CUDA when available). With ``text`` instead of ``audio`` the speech
    comes from the offline TTS (``voice``), whose own phoneme timing closes the lips on every /p b m/."""
    from parla.errors import ParlaError, require
    from parla.files import check_output

    if (audio is None) == (text is None):
        raise ParlaError("animate: give either a speech file or --text")
    if net is not None and backend != "torch":
        raise ParlaError(f"--net {net} picks an FP32 refiner of the torch reference; add --backend torch")
    check_output(output, inputs=[portrait, None if isinstance(audio, np.ndarray) else audio])
    closures = None
    if text is not None:
        from parla.audio.tts import speak

        speech = speak(text, voice=voice)
        audio = speech.audio
        closures = [(p.start_s, p.end_s) for p in speech.phonemes if p.bilabial]
    over: dict = {"model": str(model or "default"), "video.fps": fps}
    if backend == "torch":
        if device is None:
            device = "cuda" if require("torch", "train").cuda.is_available() else "cpu"
        over.update(backend="torch", device=device, precision="fp32")
    else:  # the edge path: the INT8 student on a device runtime
        over.update(backend=backend, device=device or "cpu", precision="int8")
    cfg = load_config("x86-cpu", over)
    with Avatar.from_image(
        portrait,
        cfg,
        face_index=face_index,
        seed=seed,
        pose_scale=pose_scale,
        emotion=emotion,
        watermark=watermark,
        badge=badge,
        credentials=credentials,
        net=net or "teacher",
    ) as avatar:
        assert audio is not None  # given, or spoken from the text above
        return avatar.render(audio, output, show=show, lookahead_frames=lookahead_frames, closures=closures)
