"""`parla prepare`, `parla train`, `parla distill`: the server side."""

from __future__ import annotations

import argparse
import logging

from parla import argtypes as T
from parla.errors import ParlaError

log = logging.getLogger("parla")


def cmd_prepare(args: argparse.Namespace) -> int:
    from parla.training.prepare import dataset_summary, prepare_dataset

    report = prepare_dataset(args.videos, args.output, show=not args.quiet)
    ok = sum(1 for v in report.values() if v.startswith("ok"))
    print(f"{ok} of {len(report)} clips prepared in {args.output}: {dataset_summary(args.output)}")
    for name, status in sorted(report.items()):
        if not status.startswith("ok"):
            print(f"  {name}: {status}")
    return 0


def add_prepare(sub) -> None:
    s = sub.add_parser("prepare", help="turn talking-face videos into a training dataset (resumable)")
    s.add_argument(
        "videos",
        nargs="+",
        help="folders of videos (mp4/mpg, optional sidecar .wav); PREFIX=DIR names the clips of a corpus PREFIX_stem",
    )
    s.add_argument("-o", "--output", required=True, help="dataset folder")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_prepare)


def _train_bundle(args) -> int:
    """parla train bundle: a new model folder (--teacher + --motion) or parts put into an existing one."""
    from parla.training.bundle import add_edge, add_motion, add_student, make_bundle

    if not (args.teacher or args.motion or args.student or args.edge):
        raise ParlaError(
            "parla train bundle needs --teacher RUN and --motion RUN (or any of --motion RUN, --student RUN, "
            "--edge EXPORT_DIR to put into an existing model folder)"
        )
    if args.teacher and not args.motion:
        raise ParlaError("parla train bundle: --teacher needs --motion (a new folder is made from both)")
    if args.teacher:
        make_bundle(args.teacher, args.motion, args.output)
    elif args.motion:
        add_motion(args.output, args.motion)
    if args.student:
        add_student(args.output, args.student)
    if args.edge:
        from parla.formats import EXPORTABLE, FORMATS, model_filename

        names = [model_filename(f, str(FORMATS[f].best)) for f in EXPORTABLE] + [
            model_filename(f, "fp32", "motion") for f in EXPORTABLE
        ]
        add_edge(args.output, args.edge, names)
    print(f"model bundle written to {args.output}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from parla.errors import require

    require("torch", "train")
    from dataclasses import replace

    if args.what == "bundle":
        return _train_bundle(args)
    if not args.data:
        raise ParlaError(f"parla train {args.what} needs --data DATASET (from 'parla prepare')")
    if args.what == "teacher":
        from parla.models.refiner import RefinerConfig
        from parla.training.teacher import TeacherTrainConfig, train_teacher

        rc = RefinerConfig()
        if args.channels:
            rc = replace(rc, channels=tuple(int(c) for c in args.channels.split(",")))
        if args.res:
            rc = replace(rc, res=args.res)
        if args.mode:
            rc = replace(rc, mode=args.mode)
        tc = TeacherTrainConfig()
        tc = replace(tc, **{k: v for k, v in (("steps", args.steps), ("batch", args.batch)) if v is not None})
        run = train_teacher(
            args.data,
            args.output,
            device=args.device,
            resume=args.resume,
            refiner=rc,
            train=tc,
            show=not args.quiet,
            workers=args.workers,
        )
    else:
        from parla.training.motion import MotionTrainConfig, train_motion

        tc = MotionTrainConfig()
        if args.steps:
            tc = replace(tc, steps=args.steps)
        if args.phonemes is not None:
            tc = replace(tc, phonemes="" if args.phonemes == "none" else args.phonemes)
        if args.phoneme_outputs is not None:
            tc = replace(tc, phoneme_outputs=args.phoneme_outputs)
        if args.closure is not None:
            tc = replace(tc, closure=args.closure == "on")
        if args.members is not None:
            tc = replace(tc, members=args.members)
        run = train_motion(args.data, args.output, device=args.device, train=tc, show=not args.quiet)
    print(f"trained; checkpoint in {run}")
    return 0


def add_train_parser(sub) -> None:
    s = sub.add_parser("train", help="train the teacher GAN or the audio-to-motion model")
    s.add_argument(
        "what",
        choices=["teacher", "motion", "bundle"],
        help="bundle: assemble a model folder from --teacher and --motion runs",
    )
    s.add_argument("--data", help="dataset folder from 'parla prepare'")
    s.add_argument("--teacher", help="bundle: the teacher run folder")
    s.add_argument("--motion", help="bundle: the motion run folder")
    s.add_argument("--student", help="bundle: a 'parla distill' run to add to the model folder")
    s.add_argument("--edge", help="bundle: a 'parla export' folder whose best-precision models to add")
    s.add_argument("-o", "--output", required=True, help="run folder (checkpoints, logs, samples)")
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--steps", type=T.count, default=None, help="total steps (a resumed run continues to this)")
    s.add_argument("--batch", type=T.count, default=None)
    s.add_argument(
        "--workers",
        type=T.workers,
        default=0,
        help="teacher: processes drawing training pairs (0: in this process, deterministic)",
    )
    s.add_argument("--channels", default=None, help="teacher: U-Net widths, e.g. 32,64,128,256")
    s.add_argument(
        "--phonemes",
        default=None,
        help="motion: the phoneme front-end's training features ('offline', 'stream:PAST:FUTURE', joined by '+'; "
        "'none': log-mel only); default: the shipped recipe",
    )
    s.add_argument(
        "--phoneme-outputs",
        choices=["hidden", "hidden+log_probs", "log_probs"],
        default=None,
        help="motion: which of the phoneme encoder's outputs the lips net reads (default: hidden)",
    )
    s.add_argument("--closure", choices=["on", "off"], default=None, help="motion: the lips-closed output")
    s.add_argument(
        "--members",
        type=T.members,
        default=None,
        help="motion: lips nets trained from different seeds and shipped averaged (an ensemble; default 1)",
    )
    s.add_argument("--res", type=T.resolution, default=None, help="teacher: the refiner's working resolution")
    s.add_argument(
        "--mode", choices=["residual_mask", "full"], default=None, help="teacher: how the output is composed"
    )
    s.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_train)


def cmd_distill(args: argparse.Namespace) -> int:
    from parla.errors import require

    require("torch", "train")
    from dataclasses import replace

    from parla.training.distill import STUDENT, DistillConfig, train_student

    sc = STUDENT
    if args.width:
        sc = replace(sc, channels=tuple(int(c) for c in args.width.split(",")))
    dc = DistillConfig()
    dc = replace(dc, **{k: v for k, v in (("steps", args.steps), ("batch", args.batch)) if v is not None})
    photos = None if args.photos == "none" else args.photos
    run = train_student(
        args.teacher,
        args.output,
        data_dir=args.data,
        photos=photos,
        device=args.device,
        resume=args.resume,
        student=sc,
        train=dc,
        show=not args.quiet,
    )
    print(f"student distilled; checkpoint in {run}")
    return 0


def add_distill_parser(sub) -> None:
    s = sub.add_parser("distill", help="distill the teacher into the edge student")
    s.add_argument(
        "--teacher",
        default="default",
        help="teacher: a teacher run folder or a model folder ('default': the bundled model)",
    )
    s.add_argument("--data", required=True, help="dataset folder from 'parla prepare' (real pairs)")
    s.add_argument(
        "--photos",
        default="../shared/data/train/faces",
        help="folder of training face photos for synthetic pairs ('none' to use video frames only)",
    )
    s.add_argument("-o", "--output", required=True, help="run folder (checkpoints, logs, samples)")
    s.add_argument("--width", default=None, help="student U-Net widths (default 16,32,64,128)")
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--steps", type=T.count, default=None, help="total steps (a resumed run continues to this)")
    s.add_argument("--batch", type=T.count, default=None)
    s.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_distill)
