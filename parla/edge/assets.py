"""The edge models bundled in the package (``parla/assets/default/edge``), found through importlib.resources
and checked against the sha256 in the model folder's config.json before a runtime opens them."""

from __future__ import annotations

import json
from importlib.resources import as_file, files
from pathlib import Path

from parla.errors import ModelNotFoundError
from parla.export.formats import BEST, EXPORTABLE, model_filename


def _folder() -> Path:
    # The package is installed as files (pip install / -e), so the resource is a real path; as_file keeps this
    # correct for zipped installs too as long as the caller uses it within the process.
    with as_file(files("parla") / "assets" / "default") as p:
        return Path(p)


def bundled_edge_model(fmt: str, kind: str = "refiner") -> Path:
    """Path of the bundled ``kind`` (refiner or motion) model in ``fmt``, sha256-verified."""
    from parla.media.files import sha256

    if fmt not in EXPORTABLE:
        raise ModelNotFoundError(f"no bundled edge model for format {fmt!r}; one of {', '.join(EXPORTABLE)}")
    folder = _folder()
    digests = json.loads((folder / "config.json").read_text()).get("edge", {})
    name = model_filename(fmt, BEST[fmt] if kind == "refiner" else "fp32", kind)
    if name not in digests:
        raise ModelNotFoundError(f"the bundled model has no {fmt} {kind} export ({name}); make one with "
                                 "'parla export default' and 'parla train bundle --edge DIR'")
    path = folder / "edge" / name
    for f in [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else []):
        if not f.is_file():
            raise ModelNotFoundError(f"{f}: missing from the installed package")
        if sha256(f) != digests.get(f.name):
            raise ModelNotFoundError(f"{f}: checksum mismatch (corrupt or modified model file)")
    return path


def open_bundled(fmt: str, kind: str = "refiner", device: str | None = None, threads: int | None = None):
    """A backend on the bundled model (device: cpu for onnx/tflite, CPU for OpenVINO, unless given)."""
    from parla.edge.backends import open_model

    return open_model(bundled_edge_model(fmt, kind), device=device or ("CPU" if fmt == "openvino" else "cpu"),
                      threads=threads)
