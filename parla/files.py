"""Path checks and atomic writes: an output file either appears complete or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from parla.errors import InputFileError, OutputPathError


def check_input(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is a readable file, else raise InputFileError."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    if p.is_dir():
        raise InputFileError(f"{p}: is a directory, expected a file")
    if not p.is_file():  # a device (/dev/zero never ends), a pipe, a socket
        raise InputFileError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise InputFileError(f"{p}: permission denied")
    return p


MIN_FREE_BYTES = 16 * 2**20  # an output needs at least this much free space on its file system
MAX_NAME_BYTES = 255  # a file name's limit on every common Linux file system


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Fail early, before any long work, if ``path`` cannot be written, is not a regular file (a device, a pipe),
    is one of ``inputs`` (never overwrite what is being read), or its file system is full."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if len(p.name.encode()) > MAX_NAME_BYTES:
        raise OutputPathError(f"{p.name[:40]}...: file name longer than {MAX_NAME_BYTES} bytes")
    if p.is_dir():
        raise OutputPathError(f"{p}: is a directory, expected a file name")
    if not parent.is_dir():
        raise OutputPathError(f"{p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{p}: directory {parent} is not writable")
    if p.exists() or p.is_symlink():
        if not p.is_file():
            raise OutputPathError(f"{p}: exists and is not a regular file (a device, pipe or link); give a file name")
        if not os.access(p, os.W_OK):
            raise OutputPathError(f"{p}: file exists and is not writable")
        for i in inputs:
            if i is not None and Path(i).exists() and os.path.samefile(p, i):
                raise OutputPathError(f"{p}: is also an input of this command; write the output elsewhere")
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise OutputPathError(f"{p}: only {free / 2**20:.1f} MB free in {parent}")
    return p


def check_outputs(
    outputs: Iterable[str | os.PathLike | None], *, inputs: Iterable[str | os.PathLike | None] = ()
) -> list[Path]:
    """``check_output`` for every path a command will write (``-o``, ``--stats``, ``--json``, ``--sheet``, a sink
    file), and none of them twice: a side output may not replace an input or the run's main output."""
    ins = list(inputs)
    paths = [check_output(o, inputs=ins) for o in outputs if o is not None]
    seen: dict[str, Path] = {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            raise OutputPathError(f"{p}: is also another output of this command ({seen[key]}); give each its own name")
        seen[key] = p
    return paths


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temporary name keeps the suffix so that muxers that choose a format by extension still work.
    """
    final = check_output(path)
    # a short prefix: the temporary name must fit where the final one (up to 255 bytes) does
    fd, tmp = tempfile.mkstemp(
        prefix=f".{final.stem[:32]}.", suffix=f".part{final.suffix[:16]}", dir=final.parent or "."
    )
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; a finished output gets the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
