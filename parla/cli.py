"""The ``parla`` command. Thin: parses arguments, calls the library, turns ParlaError into one line + exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from parla import __version__
from parla import argtypes as T
from parla.argtypes import OneLineParser
from parla.errors import ParlaError

log = logging.getLogger("parla")


def _cmd_demo(args: argparse.Namespace) -> int:
    from parla.assets import demo_file
    from parla.edge.avatar import animate

    out = animate(
        demo_file("portrait.jpg"),
        demo_file("speech.wav"),
        args.output,
        device=args.device,
        net=args.net,
        backend=args.backend,
        watermark=not args.no_watermark,
        credentials=not args.no_credentials,
        badge=args.badge,
        show=not args.quiet,
    )
    print(f"wrote {out}")
    return 0


def _cmd_animate(args: argparse.Namespace) -> int:
    from parla.edge.avatar import animate

    out = animate(
        args.portrait,
        args.audio,
        args.output,
        model=args.model,
        fps=args.fps,
        seed=args.seed,
        pose_scale=args.pose_scale,
        emotion=args.emotion,
        face_index=args.face_index,
        device=args.device,
        net=args.net,
        watermark=not args.no_watermark,
        credentials=not args.no_credentials,
        badge=args.badge,
        show=not args.quiet,
        text=args.text,
        voice=args.voice,
        backend=args.backend,
    )
    print(f"wrote {out}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from parla.training.prepare import dataset_summary, prepare_dataset

    report = prepare_dataset(args.videos, args.output, show=not args.quiet)
    ok = sum(1 for v in report.values() if v.startswith("ok"))
    print(f"{ok} of {len(report)} clips prepared in {args.output}: {dataset_summary(args.output)}")
    for name, status in sorted(report.items()):
        if not status.startswith("ok"):
            print(f"  {name}: {status}")
    return 0


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


def _cmd_train(args: argparse.Namespace) -> int:
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


def _cmd_face(args: argparse.Namespace) -> int:
    from parla.face.align import align_face
    from parla.face.detect import detect_faces, select_face
    from parla.files import check_output
    from parla.media.image import check_image_output, load_image, save_image

    if args.output:
        check_output(args.output, inputs=[args.portrait])
        check_image_output(args.output)
    image = load_image(args.portrait)
    faces = detect_faces(image)
    face = select_face(faces, args.face_index, name=str(args.portrait))
    crop, alignment = align_face(image, face.landmarks)
    x0, y0, x1, y1 = (round(v) for v in face.box)
    print(
        f"{args.portrait}: {len(faces)} face(s); using box ({x0}, {y0})-({x1}, {y1}), "
        f"{alignment.scale:.2f} crop px per image px"
    )
    if args.output:
        save_image(args.output, crop)
        print(f"wrote the aligned {alignment.size}x{alignment.size} crop to {args.output}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from parla.files import check_output, check_outputs
    from parla.metrics import report as R

    if args.json:
        check_output(args.json, inputs=[args.path, args.portrait, args.audio])
    show = not args.quiet
    if args.mode == "probe":
        return _fit_probe(args, show)
    if args.mode == "reenact":
        from parla.metrics.reenact import evaluate_reenactment

        rep = evaluate_reenactment(args.path, model=args.model, net=args.net, progress=show)
        for c in rep["clips"] + [{"file": "mean", **rep["summary"]}]:
            f = {k: "-" if c.get(k) is None else f"{c[k]:.4f}" for k in ("lmd", "lmd_still", "improvement")}
            print(f"{c['file']:<50} LMD {f['lmd']:>7}  still {f['lmd_still']:>7}  improvement {f['improvement']:>7}")
        if args.json:
            R.write_report(rep, args.json)
        return 0
    if args.mode == "real":
        rep = R.evaluate_real(args.path, control=args.control, progress=show)
    else:
        if not args.portrait:
            raise ParlaError("parla eval gen needs --portrait IMAGE (the photo the video was generated from)")
        if args.sheet:
            check_outputs([args.json, args.sheet], inputs=[args.path, args.portrait, args.audio])
        rep = R.evaluate_generated(
            args.path,
            portrait=args.portrait,
            audio=args.audio,
            face_index=args.face_index,
            progress=show,
            sheet=args.sheet,
        )
    print(R.format_table(rep))
    if args.json:
        R.write_report(rep, args.json)
        print(f"wrote {args.json}")
    return 0


def _fit_probe(args: argparse.Namespace, show: bool) -> int:
    from parla.files import check_output
    from parla.metrics.sync_probe import fit_probe

    if not args.output:
        raise ParlaError("parla eval probe needs -o OUT.npz (the bundled probe is parla/assets/sync_probe.npz)")
    check_output(args.output)
    probe = fit_probe(args.path, progress=show, kind=args.probe_features)
    probe.save(args.output)
    m = probe.meta
    print(
        f"fitted on {len(m['clips'])} clips ({m['frames']} frames), skipped {len(m['skipped'])}; "
        f"{m['folds']}-fold clip-wise CV correlation: median {m['cv_corr_median']:.3f}; wrote {args.output}"
    )
    return 0


def _add_train_parser(sub) -> None:
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
    s.set_defaults(func=_cmd_train)


def _cmd_distill(args: argparse.Namespace) -> int:
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


def _add_distill_parser(sub) -> None:
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
    s.set_defaults(func=_cmd_distill)


def _cmd_export(args: argparse.Namespace) -> int:
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


def _add_backend_arg(s, default: str) -> None:
    from parla.formats import BACKENDS

    s.add_argument(
        "--backend",
        choices=[*BACKENDS, "auto"],
        default=default,
        help="auto: the INT8 student on the fastest installed runtime (the default); onnxruntime, openvino, "
        "tflite: that runtime; torch: the FP32 reference (needs PyTorch's CPU build, README command 2)",
    )


def _add_provenance_args(s) -> None:
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


def _cmd_verify(args: argparse.Namespace) -> int:
    import json

    from parla.files import check_output, write_text_atomic
    from parla.watermark import verify

    if args.json:
        check_output(args.json, inputs=[args.path])
    from dataclasses import asdict

    from parla.media.credentials import available, read_credentials

    r = verify(args.path, max_frames=args.frames)  # first: it checks the input's limits before decoding
    cred = read_credentials(args.path) if available() else None
    if cred is None:
        print(f"{r.path}: Content Credentials not checked (pip install 'parla[c2pa]')")
    elif not cred.present:
        print(f"{r.path}: no Content Credentials ({cred.state}: never written, or stripped)")
    else:
        what = "AI-generated (trainedAlgorithmicMedia)" if cred.ai_generated else "no AI-generation claim"
        c = cred.claims or {}
        made = f", {c.get('generator')} {c.get('generator_version')}, model {c.get('model')}" if c else ""
        print(f"{r.path}: Content Credentials {'VALID' if cred.valid else 'INVALID'} ({cred.state}): {what}{made}"
              + ("" if cred.valid else f"; {'; '.join(cred.failures[:2])}"))  # fmt: skip
    if r.found:
        p = r.payload
        print(
            f"{r.path}: Parla watermark FOUND: probability of a mark {r.confidence:.6f} (sync z {r.psr:.1f} over "
            f"the threshold {r.threshold:.1f}; false positive rate {r.false_positive_rate:.1e}); generator "
            f"{p['generator']}, model code {p['version_code']:02x}, install {p['install_id']:03x}"
        )
    elif r.confidence >= 0.5:  # a sync stands out, but no payload passes the CRC: damaged, or too weak to read
        print(
            f"{r.path}: no Parla watermark found: a mark's sync stands out (probability of a mark {r.confidence:.3f}, "
            f"sync z {r.psr:.1f}) but its payload could not be read ({r.frames} frame(s) read)"
        )
    else:
        print(
            f"{r.path}: no Parla watermark found: probability of a mark {r.confidence:.3f} (sync z {r.psr:.1f}, "
            f"threshold {r.threshold:.1f}, {r.frames} frame(s) read)"
        )
    ai = r.found or bool(cred and cred.valid and cred.ai_generated)
    if args.json:
        report = {"path": r.path, "ai_generated": ai, "watermark": r.to_dict(),
                  "credentials": None if cred is None else asdict(cred)}  # fmt: skip
        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
    return 0 if ai else 1


def _add_export_parser(sub) -> None:
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
    s.set_defaults(func=_cmd_export)


def _add_eval_parser(sub) -> None:
    s = sub.add_parser("eval", help="measure talking-face videos: lip sync, mouth activity, blinks, motion")
    s.add_argument(
        "mode",
        choices=["real", "gen", "probe", "reenact"],
        help="real: a folder of real clips; gen: one generated video; "
        "probe: fit the lip-sync probe on a folder of training clips; "
        "reenact: animate each clip's first frame with its audio and compare mouths (LMD)",
    )
    s.add_argument("--model", help="reenact: model folder (default: the bundled model)")
    s.add_argument("--net", choices=["teacher", "student"], default="teacher", help="reenact: which refiner")
    s.add_argument("path", help="folder of videos (real, probe) or a video file (gen)")
    s.add_argument("-o", "--output", help="probe: where to write the fitted probe (.npz)")
    s.add_argument(
        "--probe-features",
        choices=["log-mel", "phonemes"],
        default="log-mel",
        help="probe: the audio features (phonemes: the phoneme encoder's state; parla/assets/sync_probe_phonemes.npz)",
    )
    s.add_argument("--json", help="write the report as JSON to this file")
    s.add_argument("--portrait", help="gen: the photo the video was generated from")
    s.add_argument("--sheet", help="gen: also write a contact sheet PNG (frames, spike and blink frames, mouths)")
    s.add_argument("--audio", help="gen: the speech (default: the video's own audio track)")
    s.add_argument("--face-index", type=T.face_index, default=None)
    s.add_argument(
        "--control",
        action="store_true",
        help="real: also measure a still-frame and a swapped-audio control of every clip",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="parla", description="One portrait plus speech in, a talking face out.")
    p.add_argument("--version", action="version", version=f"parla {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("demo", help="animate the bundled portrait with the bundled speech (the edge runtime)")
    s.add_argument("-o", "--output", default="parla_demo.mp4")
    _add_backend_arg(s, "auto")
    s.add_argument("--device", default=None, help="the backend's device (torch: cpu or cuda, default cuda if any)")
    s.add_argument(
        "--net", choices=["teacher", "student"], default=None, help="with --backend torch: which refiner (teacher)"
    )
    _add_provenance_args(s)
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("animate", help="animate a portrait with a speech file (the fastest installed runtime)")
    s.add_argument("portrait")
    s.add_argument("audio", nargs="?", help="speech file (or --text)")
    s.add_argument("--text", help="speak this text with the offline TTS (pip install 'parla[tts]') instead")
    s.add_argument("--voice", default="en-us", help="TTS voice (eSpeak NG: en-us, en-gb-x-rp, fr, de, es, ...)")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    s.add_argument(
        "--net",
        choices=["teacher", "student"],
        default=None,
        help="with --backend torch: the teacher (best quality, the default) or the distilled student, both FP32",
    )
    _add_provenance_args(s)
    s.add_argument("--face-index", type=T.face_index, default=None, help="which face to use, 0 = largest")
    s.add_argument("--seed", type=T.seed, default=0, help="seed of head motion and blinks (same seed, same video)")
    s.add_argument("--pose-scale", type=T.pose_scale, default=1.0, help="head-motion amplitude (0 = still head)")
    s.add_argument("--emotion", default=None, help="neutral, happy, sad, surprised, or K numbers")
    s.add_argument("--fps", type=T.fps, default=25.0)
    _add_backend_arg(s, "auto")
    s.add_argument("--device", default=None, help="the backend's device (torch: cpu or cuda, default cuda if any)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_animate)

    s = sub.add_parser("prepare", help="turn talking-face videos into a training dataset (resumable)")
    s.add_argument(
        "videos",
        nargs="+",
        help="folders of videos (mp4/mpg, optional sidecar .wav); PREFIX=DIR names the clips of a corpus PREFIX_stem",
    )
    s.add_argument("-o", "--output", required=True, help="dataset folder")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_prepare)

    _add_train_parser(sub)

    _add_distill_parser(sub)

    _add_export_parser(sub)

    from parla.commands import add_bench, add_stream

    add_stream(sub)
    add_bench(sub)

    _add_eval_parser(sub)

    s = sub.add_parser(
        "verify",
        help="Content Credentials and Parla's watermark in a video or image (exit 0: AI-generated by either signal, "
        "1: neither, 2: error)",
    )
    s.add_argument("path", help="a video or an image")
    s.add_argument("--json", help="write the result as JSON to this file")
    s.add_argument("--frames", type=T.frames, default=100, help="consecutive frames of a video to examine")
    s.set_defaults(func=_cmd_verify)

    s = sub.add_parser("face", help="detect and align the face of a portrait (check a photo before animating)")
    s.add_argument("portrait")
    s.add_argument("-o", "--output", help="write the aligned crop here (png/jpg)")
    s.add_argument("--face-index", type=T.face_index, default=None)
    s.set_defaults(func=_cmd_face)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # a corrupt image is our one error line, not OpenCV's WARN
    if argv[:1] in (["stream"], ["bench"]):
        from parla.commands import quiet_blas

        quiet_blas()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="parla: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    previous = _stop_on_signals()
    try:
        return int(args.func(args) or 0)
    except ParlaError as e:
        return _fail(e, e.exit_code)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"parla: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # the reader of stdout went away (`parla stream --sink stdout | head`): a normal end
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, I/O errors, limits of the file system
        where = f": {e.filename}" if e.filename else ""
        return _fail(f"{e.strerror or e}{where}", 2)
    except MemoryError:
        return _fail("out of memory", 2)
    except Exception as e:  # a bug: one line for the user, the traceback with -v
        if args.verbose:
            traceback.print_exc()
        return _fail(f"internal error ({type(e).__name__}: {e}); rerun with -v for the traceback", 1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


MAX_MESSAGE = 400  # characters of one error line


def _fail(message: object, code: int) -> int:
    """One line on stderr, whatever the message holds (values quoted from hostile files can be long or
    multi-line)."""
    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    print(f"parla: error: {text}", file=sys.stderr)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``docker stop``, systemd, a closed terminal): unwinds like Ctrl-C, so that every exit
    path removes its temporary files and a recording is finished."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def _stop_on_signals() -> dict:
    """Install the handlers; returns the previous ones (main() restores them: it is also called in-process)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
