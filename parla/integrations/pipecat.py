"""An offline face for a Pipecat assistant: ``ParlaVideoService``, placed after any TTS.

    from parla.integrations.pipecat import ParlaVideoService
    face = ParlaVideoService("portrait.jpg")                       # the INT8 edge model, on this CPU
    pipeline = Pipeline([transport.input(), stt, llm, tts, face, transport.output()])

It consumes the TTS's ``TTSAudioRawFrame``s (any rate; resampled to 16 kHz inside for the lips), treats
``TTSStartedFrame``/``TTSStoppedFrame`` as a reply's bounds, and emits on the video clock an ``OutputImageRawFrame``
per frame with the reply's audio re-timed beside it (a ``TTSAudioRawFrame`` of exactly the samples that play during
that frame), so that the transport plays them together; between replies the face idles and no audio is sent (the
transport's silence, so that its bot-speaking events stay those of the reply). On an ``InterruptionFrame`` the
reply stops at the next frame and none of its audio goes further. Every other frame passes through untouched.
No exception escapes into the pipeline: bad audio is logged and counted (``stats``), and the face goes on idling.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator

import numpy as np

from parla.errors import ParlaError, require

require("pipecat", "pipecat")

from loguru import logger  # noqa: E402  (pipecat's own logger)
from pipecat.frames.frames import (  # noqa: E402
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup  # noqa: E402
from pipecat.services.settings import TTSSettings  # noqa: E402
from pipecat.services.tts_service import TTSService  # noqa: E402

from parla.edge.avatar import Avatar  # noqa: E402
from parla.edge.live import LiveFrame, LiveSession  # noqa: E402

NS = 1_000_000_000


class ParlaVideoService(FrameProcessor):
    """``portrait``: a photo path or RGB array, or an open ``parla.edge.Avatar`` (which the caller then closes);
    ``config``: a runtime target or YAML (``x86-cpu``: the INT8 student on the fastest installed runtime);
    ``max_pending_s``: reply audio held ahead of playback at most (more is dropped and counted);
    ``max_lag_frames``: how far the frames may fall behind the clock (a busy CPU) before frames are skipped."""

    def __init__(
        self,
        portrait: str | os.PathLike | np.ndarray | Avatar,
        *,
        config: str = "x86-cpu",
        overrides: dict | None = None,
        max_pending_s: float = 120.0,
        max_lag_frames: int = 25,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._own = not isinstance(portrait, Avatar)
        self.avatar: Avatar = (
            portrait if isinstance(portrait, Avatar) else Avatar.from_image(portrait, config, overrides=overrides)
        )
        self.max_pending_s, self.max_lag_frames = float(max_pending_s), int(max_lag_frames)
        self.session: LiveSession | None = None
        self._task: asyncio.Task | None = None
        self._stopped: list[TTSStoppedFrame] = []  # held until the reply's last frame has gone out
        self._context: str | None = None  # the reply's TTS context, carried by its re-timed audio
        self.errors = 0  # bad TTS frames dropped (logged)

    @property
    def fps(self) -> float:
        return float(self.avatar.config.video.fps)

    @property
    def stats(self):
        """The live session's counters (``parla.edge.live.LiveStats``), or None before the pipeline starts."""
        return self.session.stats if self.session is not None else None

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        self.session = LiveSession(
            self.avatar,
            sample_rate=setup.audio_out_sample_rate,
            max_pending_s=self.max_pending_s,
            max_lag_frames=self.max_lag_frames,
        )
        self._task = self.create_task(self._frames(), name="parla-frames")

    async def _frames(self) -> None:
        assert self.session is not None
        async for f in self.session.frames():
            try:
                await self._emit(f)
            except Exception as e:  # a downstream failure must not end the face
                self.errors += 1
                logger.warning(f"{self}: frame {f.index} not sent: {e}")

    async def _emit(self, f: LiveFrame) -> None:
        pts = int(round(f.pts * NS))
        if f.speaking:
            pcm = (np.clip(f.audio, -1.0, 1.0) * 32768.0).round().clip(-32768, 32767).astype(np.int16)
            audio = TTSAudioRawFrame(pcm.tobytes(), f.sample_rate, 1, context_id=self._context)
            audio.pts = pts
            await self.push_frame(audio)
        h, w = f.image.shape[:2]
        image = OutputImageRawFrame(image=f.image.tobytes(), size=(w, h), format="RGB")
        image.pts = pts
        await self.push_frame(image)
        if self._stopped and not f.speaking and self.session is not None and self.session.idle:
            for frame in self._stopped:  # the reply has been shown: its end goes on
                await self.push_frame(frame)
            self._stopped.clear()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and self.session is not None:
            try:
                if isinstance(frame, TTSAudioRawFrame):
                    self._context = frame.context_id
                    pcm = np.frombuffer(frame.audio, np.int16)
                    channels = max(1, int(frame.num_channels))
                    self.session.push_audio(
                        pcm[: len(pcm) // channels * channels].reshape(-1, channels), frame.sample_rate
                    )
                    return  # re-timed: it goes on with its frames
                if isinstance(frame, TTSStartedFrame):
                    self._context = getattr(frame, "context_id", None)
                elif isinstance(frame, TTSStoppedFrame):
                    self.session.flush()
                    self._stopped.append(frame)
                    return
                elif isinstance(frame, InterruptionFrame):
                    self.session.interrupt()
                    stopped, self._stopped = self._stopped, []
                    await self.push_frame(frame, direction)
                    for s in stopped:
                        await self.push_frame(s)
                    return
                elif isinstance(frame, (EndFrame, CancelFrame)):
                    await self._stop()
            except (ParlaError, ValueError) as e:
                self.errors += 1
                logger.warning(f"{self}: {type(frame).__name__} dropped: {e}")
                return
        await self.push_frame(frame, direction)

    async def _stop(self) -> None:
        if self._task is not None:
            await self.cancel_task(self._task)
            self._task = None
        if self.session is not None:
            self.session.close(wait=False)  # a frame being made finishes in its thread; the event loop goes on

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()
        if self._own:
            self.avatar.close()


class ParlaTTSService(TTSService):
    """Parla's offline TTS (eSpeak NG, extra ``[tts]``: GPL, so optional) as a Pipecat TTS service: each sentence
    is synthesized whole in a worker thread and sent in 40-ms ``TTSAudioRawFrame``s at the pipeline's output rate,
    between ``TTSStartedFrame`` and ``TTSStoppedFrame``. ``voice``: an eSpeak NG voice (``en-us``, ``de``, ...)."""

    CHUNK_S = 0.04

    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 160, **kwargs) -> None:
        settings = TTSSettings(model=None, voice=voice, language=None)
        super().__init__(push_start_frame=True, push_stop_frames=True, stop_frame_timeout_s=0.5, settings=settings,
                         **kwargs)  # fmt: skip
        self.voice, self.words_per_minute = voice, words_per_minute

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        from parla.audio.io import SAMPLE_RATE, Resampler
        from parla.audio.tts import speak

        if not text.strip():
            return
        try:
            await self.start_tts_usage_metrics(text)
            speech = await asyncio.to_thread(speak, text, voice=self.voice, words_per_minute=self.words_per_minute)
        except ParlaError as e:
            logger.warning(f"{self}: {e}")
            return
        await self.stop_ttfb_metrics()
        audio = speech.audio
        if self.sample_rate != SAMPLE_RATE:
            rs = Resampler(SAMPLE_RATE, rate=self.sample_rate)
            audio = np.concatenate([rs.push(audio), rs.flush()])
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        n = int(self.sample_rate * self.CHUNK_S)
        for i in range(0, len(pcm), n):
            yield TTSAudioRawFrame(pcm[i : i + n].tobytes(), self.sample_rate, 1, context_id=context_id)
