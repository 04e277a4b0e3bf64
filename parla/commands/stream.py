"""`parla stream`: real time from a microphone, a file, text or stdin into a window, a file, frames or the page."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from parla import argtypes as T
from parla.commands.common import overrides
from parla.errors import ParlaError
from parla.formats import BACKENDS

log = logging.getLogger("parla")


def _source(cfg, args: argparse.Namespace, avatar):
    from parla.edge.sources import FileSource, MicSource, StdinSource

    a = cfg.audio
    if args.text is not None or args.text_stdin:
        from parla.edge.sources import TextSource, text_lines
        from parla.edge.synth import FILE_LOOKAHEAD_FRAMES

        lines = [args.text] if args.text is not None else text_lines(sys.stdin.buffer)
        # a reply exists ahead of playback: delivered early, like a file
        return TextSource(lines, args.voice, a.chunk_ms, lead_s=FILE_LOOKAHEAD_FRAMES / cfg.video.fps, speed=args.speed)
    if a.source == "file":
        if not args.audio:
            raise ParlaError("the config's audio.source is 'file': give --audio SPEECH (or --mic / --stdin)")
        # the file exists ahead of playback: delivered early by what the model reads ahead (Avatar.lead_for)
        source = FileSource(args.audio, a.chunk_ms, speed=args.speed)
        source.lead_s = avatar.lead_for(source)
        return source
    if a.source == "mic":
        return MicSource(a.sample_rate, a.chunk_ms, a.device_index, a.channels)
    return StdinSource(a.sample_rate, a.chunk_ms, a.channels)


def cmd_stream(args: argparse.Namespace) -> int:
    from parla.edge.avatar import Avatar
    from parla.edge.config import load_config
    from parla.edge.render import content_credentials
    from parla.edge.sinks import StopStream, open_sink

    if not args.portrait and not args.camera:
        raise ParlaError("parla stream needs a PORTRAIT photo or --camera")
    cfg = load_config(args.config, overrides(args))
    from parla.files import check_outputs

    recording = cfg.video.sink[5:] if cfg.video.sink.startswith("file:") else None
    check_outputs([recording, args.stats], inputs=[args.portrait, args.audio, args.config])
    token = args.token or os.environ.get("PARLA_WEB_TOKEN") or None
    if cfg.video.sink == "web":  # before the model loads: a refused bind is refused at once
        from parla.edge.web import check_bind

        check_bind(cfg.video.web_host, token)
    kw = {
        "seed": args.seed,
        "pose_scale": args.pose_scale,
        "emotion": args.emotion,
        "watermark": not args.no_watermark,
        "badge": args.badge,
    }
    avatar = (
        Avatar.from_camera(cfg, **kw)
        if cfg.camera.enabled and not args.portrait
        else Avatar.from_image(args.portrait, cfg, **kw)
    )
    with avatar:
        source = _source(cfg, args, avatar)
        sink = open_sink(
            cfg.video.sink,
            cfg.video.fps,
            host=cfg.video.web_host,
            port=cfg.video.web_port,
            token=token,
            metadata=avatar.metadata,
            credentials=content_credentials(avatar.metadata, not args.no_credentials, live=True)
            if cfg.video.sink.startswith("file:")
            else None,
        )
        try:
            stats = avatar.run(source, sink, max_seconds=args.seconds)
        except StopStream:
            return 0
        except KeyboardInterrupt:
            if getattr(sink, "finished", False):
                print(f"parla: stopped; the recording up to the signal is kept in {sink.path}", file=sys.stderr)
            raise
    s = stats.summary()
    a2f = s["audio_to_frame_ms"]
    print(
        f"parla: {s['frames']} frames in {s['wall_s']} s ({s['fps']} fps), {s['dropped']} dropped, "
        f"audio-to-frame p50 {a2f.get('p50')} ms / p95 {a2f.get('p95')} ms; peak RSS {s['peak_rss_mb']} MB",
        file=sys.stderr,
    )
    if args.stats:
        from parla.files import write_text_atomic

        write_text_atomic(
            args.stats,
            json.dumps(
                {
                    **s,
                    "rss_mb": list(stats.rss_mb),
                    "config": cfg.target,
                    "backend": cfg.backend,
                    "precision": cfg.precision,
                },
                indent=2,
            )
            + "\n",
        )
    return 0


def add_stream(sub) -> None:
    s = sub.add_parser("stream", help="stream live audio into a talking face on an edge backend")
    s.add_argument("portrait", nargs="?", help="portrait photo (or --camera)")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--audio", help="speech file, played at real-time pace")
    src.add_argument("--mic", action="store_true", help="microphone (PyAudio; device from the config)")
    src.add_argument("--stdin", action="store_true", help="raw s16le PCM on stdin (rate/channels: config)")
    src.add_argument("--text", help="speak this text with the offline TTS (pip install 'parla[tts]')")
    src.add_argument(
        "--text-stdin",
        action="store_true",
        help="speak each line of stdin as it arrives (an assistant piping its replies); idles between them",
    )
    s.add_argument("--voice", default="en-us", help="TTS voice for --text / --text-stdin (eSpeak NG)")
    s.add_argument("--camera", action="store_true", help="capture the portrait with the config's camera")
    s.add_argument("--config", default="x86-cpu", help="firmware config: a target name or a YAML path")
    s.add_argument("--sink", help="window, stdout (raw RGB), web (kiosk page) or file:OUT.mp4")
    s.add_argument("--backend", choices=[*BACKENDS, "auto"])
    s.add_argument("--device", help="backend device (cpu, CPU, NPU, GPU, cuda, edgetpu, ...)")
    s.add_argument("--precision", help="fp32, fp16, w8, int8, bf16 (what the backend runs)")
    s.add_argument("--threads", type=T.threads)
    s.add_argument("--fps", type=T.fps)
    s.add_argument("--host", help="web sink: address to serve the kiosk page on (default 127.0.0.1)")
    s.add_argument("--port", type=T.port, help="web sink port")
    s.add_argument(
        "--token",
        help="web sink: the token every request must carry (required beyond loopback; default: $PARLA_WEB_TOKEN)",
    )
    s.add_argument("--chunk-ms", type=T.chunk_ms)
    s.add_argument("--rate", type=T.sample_rate, help="microphone / stdin sample rate (Hz)")
    s.add_argument("--device-index", type=T.device_index, help="PyAudio input device")
    s.add_argument("--seconds", type=T.seconds, help="stop after this much audio")
    s.add_argument("--speed", type=T.speed, default=1.0, help="--audio pace: 1 = real time, 0 = as fast as possible")
    s.add_argument("--seed", type=T.seed, default=0)
    s.add_argument("--pose-scale", type=T.pose_scale, default=1.0)
    s.add_argument("--emotion")
    s.add_argument("--no-watermark", action="store_true", help="turn the invisible watermark off (logged)")
    s.add_argument(
        "--no-credentials", action="store_true", help="write no C2PA Content Credentials into a recording (logged)"
    )
    s.add_argument("--badge", action="store_true", help="draw a visible 'AI-generated' badge")
    s.add_argument("--stats", help="write the run's statistics (fps, drops, latency, RSS over time) as JSON")
    s.set_defaults(func=cmd_stream)
