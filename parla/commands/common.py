"""What several commands share: the backend and provenance options, the config overrides of the runtime commands."""

from __future__ import annotations

import argparse

from parla.formats import BACKENDS


def add_backend_arg(s, default: str) -> None:

    s.add_argument(
        "--backend",
        choices=[*BACKENDS, "auto"],
        default=default,
        help="auto: the INT8 student on the fastest installed runtime (the default); onnxruntime, openvino, "
        "tflite: that runtime; torch: the FP32 reference (needs PyTorch's CPU build, README command 2)",
    )


def add_provenance_args(s) -> None:
    s.add_argument(
        "--no-watermark",
        action="store_true",
        help="do NOT embed the invisible watermark (logged; see docs/responsible-use.md)",
    )
    s.add_argument("--badge", action="store_true", help="also draw a visible 'AI-generated' badge")
    s.add_argument(
        "--no-credentials",
        action="store_true",
        help="do NOT write the C2PA Content Credentials manifest (logged; see docs/responsible-use.md)",
    )


def overrides(args: argparse.Namespace) -> dict:
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
