"""`parla demo`, `parla animate`, `parla face`: a portrait animated or checked."""

from __future__ import annotations

import argparse
import logging

from parla import argtypes as T
from parla.commands.common import add_backend_arg, add_provenance_args

log = logging.getLogger("parla")


def cmd_demo(args: argparse.Namespace) -> int:
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


def add_demo(sub) -> None:
    s = sub.add_parser("demo", help="animate the bundled portrait with the bundled speech (the edge runtime)")
    s.add_argument("-o", "--output", default="parla_demo.mp4")
    add_backend_arg(s, "auto")
    s.add_argument("--device", default=None, help="the backend's device (torch: cpu or cuda, default cuda if any)")
    s.add_argument(
        "--net", choices=["teacher", "student"], default=None, help="with --backend torch: which refiner (teacher)"
    )
    add_provenance_args(s)
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)


def cmd_animate(args: argparse.Namespace) -> int:
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


def add_animate(sub) -> None:
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
    add_provenance_args(s)
    s.add_argument("--face-index", type=T.face_index, default=None, help="which face to use, 0 = largest")
    s.add_argument("--seed", type=T.seed, default=0, help="seed of head motion and blinks (same seed, same video)")
    s.add_argument("--pose-scale", type=T.pose_scale, default=1.0, help="head-motion amplitude (0 = still head)")
    s.add_argument("--emotion", default=None, help="neutral, happy, sad, surprised, or K numbers")
    s.add_argument("--fps", type=T.fps, default=25.0)
    add_backend_arg(s, "auto")
    s.add_argument("--device", default=None, help="the backend's device (torch: cpu or cuda, default cuda if any)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_animate)


def cmd_face(args: argparse.Namespace) -> int:
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


def add_face(sub) -> None:
    s = sub.add_parser("face", help="detect and align the face of a portrait (check a photo before animating)")
    s.add_argument("portrait")
    s.add_argument("-o", "--output", help="write the aligned crop here (png/jpg)")
    s.add_argument("--face-index", type=T.face_index, default=None)
    s.set_defaults(func=cmd_face)
