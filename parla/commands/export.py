"""`parla export`: a model folder to ONNX, OpenVINO and TFLite, FP32 and INT8."""

from __future__ import annotations

import argparse
import logging

from parla import argtypes as T

log = logging.getLogger("parla")


def cmd_export(args: argparse.Namespace) -> int:
    from parla.errors import require

    require("torch", "train")
    from parla.export.api import export_model

    r = export_model(
        args.checkpoint,
        args.format,
        args.precision,
        args.output,
        calib=args.calib,
        calib_size=args.calib_size,
        parity=args.parity,
        parity_size=args.parity_size,
        show=not args.quiet,
    )
    for x in r["results"]:
        q = "reference" if x["psnr"] is None else f"PSNR {x['psnr']:.2f} dB, SSIM {x['ssim']:.4f}"
        print(f"{x['format']:>8} {x['precision']:<5} {q}, {x['size_mb']:.2f} MB, {x['latency_ms']:.2f} ms/frame")
    print(f"wrote {args.output}/parity.json and parity.md in {r['seconds']:.0f} s")
    return 0


def add_export_parser(sub) -> None:
    from parla.formats import EXPORTABLE, FORMATS

    precisions = sorted({p for f in EXPORTABLE for p in FORMATS[f].precisions}) + ["all"]
    s = sub.add_parser("export", help="export the student to ONNX, OpenVINO and TFLite (fp32/fp16/int8)")
    s.add_argument("checkpoint", help="'default' (the bundled student), a model folder, or a distill/teacher run")
    s.add_argument("--format", choices=[*EXPORTABLE, "all"], default="all")
    s.add_argument(
        "--precision",
        choices=precisions,
        default="int8",
        help="fp32, fp16 (OpenVINO), w8 (TFLite dynamic range), int8 (full integer), all",
    )
    s.add_argument(
        "--calib",
        default=None,
        help="int8 calibration frames: a prepared dataset or a folder of training videos "
        "(default: ../shared/data/train/videos)",
    )
    s.add_argument("--calib-size", type=T.frames, default=64, help="calibration frames")
    s.add_argument(
        "--parity",
        default=None,
        help="held-back frames for the parity report: a dataset or videos (default: "
        "../shared/data/eval/videos, else 'demo': synthetic motions of the bundled portrait)",
    )
    s.add_argument("--parity-size", type=T.frames, default=32)
    s.add_argument("-o", "--output", required=True, help="output folder (models, parity.json, parity.md)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_export)
