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
from parla.argtypes import OneLineParser
from parla.errors import ParlaError

log = logging.getLogger("parla")


def build_parser() -> argparse.ArgumentParser:
    from parla.commands import bench, evaluate, export, run, stream, train, verify

    p = OneLineParser(prog="parla", description="One portrait plus speech in, a talking face out.")
    p.add_argument("--version", action="version", version=f"parla {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run.add_demo(sub)
    run.add_animate(sub)
    train.add_prepare(sub)
    train.add_train_parser(sub)
    train.add_distill_parser(sub)
    export.add_export_parser(sub)
    stream.add_stream(sub)
    bench.add_bench(sub)
    evaluate.add_eval_parser(sub)
    verify.add_verify(sub)
    run.add_face(sub)
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
