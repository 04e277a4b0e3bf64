"""`parla stream` and `parla bench` (argument parsing and the command bodies; the work is in parla.edge and
parla.bench)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from parla import argtypes as T
from parla.errors import ParlaError
from parla.formats import BACKENDS

# The per-frame host work (a 95x95 spline solve, small matrix products) gains nothing from BLAS threads and, on a
# small CPU, their spinning competes with the runtime's own threads (seen: warp p95 45 ms instead of 4 ms on 2
# cores). Set before numpy is imported (the CLI imports it lazily); an explicit environment wins.
SINGLE_THREAD_BLAS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def quiet_blas() -> None:
    for k, v in SINGLE_THREAD_BLAS.items():
        os.environ.setdefault(k, v)


def _overrides(args: argparse.Namespace) -> dict:
    return {
        "backend": args.backend,
        "device": args.device,
        "precision": args.precision,
        "threads": args.threads,
        "video.fps": args.fps,
        "video.sink": args.sink,
        "video.web_port": args.port,
        "video.web_host": args.host,
        "audio.chunk_ms": args.chunk_ms,
        "audio.sample_rate": args.rate,
        "audio.device_index": args.device_index,
        "audio.source": "file" if args.audio else "mic" if args.mic else "stdin" if args.stdin else None,
        "camera.enabled": True if args.camera else None,
    }


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
    cfg = load_config(args.config, _overrides(args))
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


def _refuse_package_folder(out: Path) -> None:
    """Reports never go into the installed package (an editable install's checkout holds the committed results
    under benchmarks/, which only an explicit -o reaches)."""
    import parla
    from parla.errors import ParlaError

    package = Path(parla.__file__).resolve().parent
    if out.resolve().is_relative_to(package):
        raise ParlaError(f"{out}: inside the installed package {package}; write the report elsewhere (-o DIR)")


def cmd_bench(args: argparse.Namespace) -> int:
    from parla import bench

    out = Path(args.output)
    _refuse_package_folder(out)
    if args.merge:
        bench.merge(args.merge, out)
        print(f"merged {len(args.merge)} reports -> {out / 'bench.md'}")
        return 0
    runs = list(bench.DEFAULT_RUNS)
    if args.config:
        from parla.edge.config import load_config

        runs = []
        for name in args.config:
            c = load_config(name)
            runs.append((c.backend, c.device, c.precision))
    if args.backends:
        runs = [r for r in runs if r[0] in args.backends]
    from parla.assets import demo_file

    if args.model:
        from parla.modelfolder import ModelFolder

        ModelFolder(args.model)  # a missing or broken folder fails here, in one line, before any backend starts
    report = bench.run_bench(
        runs,
        out=out,
        portrait=args.portrait or str(demo_file("portrait.jpg")),
        audio=args.audio or str(demo_file("speech.wav")),
        seconds=args.seconds,
        fps=args.fps,
        frames=args.frames,
        threads=args.threads,
        show=not args.quiet,
        model=args.model or "default",
    )
    print(bench.markdown(report))
    print(f"reports: {out / 'bench.json'}, {out / 'bench.md'}")
    return 0 if report["results"] else 1


def add_bench(sub) -> None:
    s = sub.add_parser("bench", help="benchmark backends and hardware targets (JSON + Markdown + PNG)")
    s.add_argument("--config", nargs="*", help="firmware configs to bench (default: every installed runtime)")
    s.add_argument("--backends", nargs="*", choices=BACKENDS)
    s.add_argument("--portrait", help="default: the bundled demo portrait")
    s.add_argument("--audio", help="default: the bundled demo speech (looped to --seconds)")
    s.add_argument("--seconds", type=T.seconds, default=60.0, help="length of the real-time streaming run")
    s.add_argument("--fps", type=T.fps, default=30.0)
    s.add_argument("--frames", type=T.frames, default=300, help="frames of the unpaced run")
    s.add_argument("--threads", type=T.threads, default=2)
    s.add_argument("--model", help="a model folder to bench instead of the bundled one (e.g. a candidate)")
    s.add_argument("--merge", nargs="+", metavar="JSON", help="join bench.json files from several machines")
    s.add_argument("-o", "--output", default="parla-bench", help="report folder (default: ./parla-bench)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_bench)
