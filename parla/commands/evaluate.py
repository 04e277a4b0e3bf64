"""`parla eval`: generated videos, real ones, self-reenactment and the sync probes."""

from __future__ import annotations

import argparse
import logging

from parla import argtypes as T
from parla.errors import ParlaError

log = logging.getLogger("parla")


def cmd_eval(args: argparse.Namespace) -> int:
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


def add_eval_parser(sub) -> None:
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
    s.set_defaults(func=cmd_eval)
