"""`parla bench`: the edge runtime's speed on this machine (the work is in ``parla.bench``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from parla import argtypes as T
from parla.errors import ParlaError
from parla.formats import BACKENDS

log = logging.getLogger("parla")


def _refuse_package_folder(out: Path) -> None:
    """Reports never go into the installed package (an editable install's checkout holds the committed results
    under benchmarks/, which only an explicit -o reaches)."""
    import parla

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
