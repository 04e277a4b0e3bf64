"""Model folders, the one place that locates, verifies and loads them (used by the runtime, training, export and
evaluation alike).

A model folder (made by ``parla train bundle``; the package ships one as ``parla/assets/default``) holds
``config.json`` (the networks' configs, motion settings, and the sha256 of every weight file: ``sha256`` for the
safetensors, ``edge`` for the exported models), the safetensors weights, ``basis.npz`` and optionally ``edge/``.
Nothing here imports torch at module level; ``load_weights`` needs it.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from importlib.resources import as_file, files
from pathlib import Path

from parla.errors import ModelNotFoundError
from parla.formats import FORMATS, model_filename

DEFAULT = "default"  # the name that means the bundled model
NETS = ("teacher", "student")


def bundled_path() -> Path:
    """The package's own model folder (a real directory for pip installs, editable or not)."""
    with as_file(files("parla") / "assets" / DEFAULT) as p:
        path = Path(p)
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            "no trained model is bundled with this installation of Parla (parla/assets/default/config.json is missing)"
        )
    return path


def locate(spec: str | os.PathLike | None) -> Path:
    """``None`` or ``default``: the bundled model; else a model folder."""
    if spec is None or str(spec) == DEFAULT:
        return bundled_path()
    p = Path(spec)
    if not (p / "config.json").is_file():
        raise ModelNotFoundError(
            f"{p}: not a Parla model folder (no config.json); use 'default' or a folder made by 'parla train bundle'"
        )
    return p


class ModelFolder:
    """A model folder: its config read once, its files checked against their sha256 before use."""

    def __init__(self, spec: str | os.PathLike | None = None) -> None:
        from parla.limits import MAX_CONFIG_BYTES

        self.path = locate(spec)
        cj = self.path / "config.json"
        try:
            if cj.stat().st_size > MAX_CONFIG_BYTES:
                raise ModelNotFoundError(f"{cj}: over the {MAX_CONFIG_BYTES >> 10} KiB limit for a model config")
            self.config: dict = json.loads(cj.read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise ModelNotFoundError(f"{self.path / 'config.json'}: unreadable ({e})") from e
        if not isinstance(self.config, dict):
            raise ModelNotFoundError(f"{self.path / 'config.json'}: not a model config (expected a JSON object)")
        for section, prefix in (("sha256", ""), ("edge", "edge/")):
            listed = self.config.get(section, {})
            if not isinstance(listed, dict):
                raise ModelNotFoundError(f"{cj}: '{section}' is not a JSON object of file digests")
            for name in listed:  # a list that names anything outside the folder condemns the folder
                if not _confined(self.path, prefix + str(name)):
                    raise ModelNotFoundError(f"{cj}: {str(name)[:80]!r} names a file outside the model folder")

    @property
    def is_bundled(self) -> bool:
        return self.path.resolve() == bundled_path().resolve()

    def version(self, net: str = "teacher") -> str:
        if net == "student":
            return str(self.config.get("student", {}).get("version", "unknown"))
        return str(self.config.get("version", "unknown"))

    def file(self, name: str) -> Path:
        """``name`` inside the folder, checked against its recorded sha256 (``sha256`` or ``edge`` map)."""

        sections = [self.config.get("sha256", {}), self.config.get("edge", {})]
        if not all(isinstance(s, dict) for s in sections):
            raise ModelNotFoundError(f"{self.path / 'config.json'}: its sha256 lists are not JSON objects")
        digests = {**sections[0], **sections[1]}
        rel = name.removeprefix("edge/")
        if rel not in digests:
            raise ModelNotFoundError(
                f"{self.path / name}: not listed in {self.path / 'config.json'} (no sha256 to check)"
            )
        return verified(self.path, name, digests[rel], self.path / "config.json")

    def refiner_section(self, net: str) -> dict:
        if net not in NETS:
            raise ModelNotFoundError(f"net must be one of {', '.join(NETS)}, not {net!r}")
        if net == "student":
            if "student" not in self.config:
                raise ModelNotFoundError(
                    f"{self.path}: this model folder has no distilled student (run 'parla "
                    "distill' and 'parla train bundle --student RUN')"
                )
            return self.config["student"]["refiner"]
        return self.config["refiner"]

    def refiner(self, net: str = "teacher", device: str = "cpu"):
        """The refiner ``nn.Module`` (eval mode) with its verified weights, and its config."""
        from parla.models.refiner import Refiner, RefinerConfig

        cfg = RefinerConfig.from_dict(self.refiner_section(net))
        g = Refiner(cfg).eval()
        load_weights(g, self.file("student.safetensors" if net == "student" else "refiner.safetensors"), device)
        return g.to(device), cfg

    def lipnet(self, device: str = "cpu"):
        """The audio->lips ``nn.Module`` (eval mode) with its verified weights, and its config."""
        from parla.models.lips import LipNetConfig, build_lipnet

        cfg = LipNetConfig.from_dict(self.config["motion"])
        net = build_lipnet(cfg).eval()
        load_weights(net, self.file("motion.safetensors"), device)
        return net.to(device), cfg

    @cached_property
    def basis(self):
        from parla.face.expression import ExpressionBasis

        return ExpressionBasis.load(self.file("basis.npz"))

    def edge_model(self, fmt: str, kind: str = "refiner", precision: str | None = None) -> Path:
        """An exported model in ``edge/``, sha256-verified (an OpenVINO .xml together with its .bin)."""
        precision = precision or (FORMATS[fmt].best if kind == "refiner" else "fp32")
        name = model_filename(fmt, str(precision), kind)
        if name not in self.config.get("edge", {}):
            hint = (
                f"export it with 'parla export {'default' if self.is_bundled else self.path} --format {fmt} "
                f"--precision {precision} -o DIR' and set 'model: DIR'"
            )
            raise ModelNotFoundError(f"{self.path}: has no {fmt} {precision} {kind} model ({name}); {hint}")
        path = self.file(f"edge/{name}")
        if path.suffix == ".xml":
            self.file(f"edge/{path.with_suffix('.bin').name}")
        return path


SHA256SUMS = "SHA256SUMS"  # the digest list of a 'parla export' folder (sha256sum's format)
MAX_SUMS_BYTES = 64 * 1024  # ... read at most this much


def _confined(folder: Path, name: str) -> bool:
    """A plain relative name that stays inside ``folder`` (no absolute path, no '..', no link out of it)."""
    inside = Path(os.path.normpath(name))
    return not (not name or "\0" in name or inside.is_absolute() or ".." in inside.parts) and (
        folder / name
    ).resolve().is_relative_to(folder.resolve())


def verified(folder: Path, name: str, digest: object, listed_in: Path) -> Path:
    """``folder/name``, refused unless the name stays inside the folder (no absolute path, no '..', no link out
    of it), it is a regular file, and its sha256 is ``digest``."""
    from parla.files import sha256

    path = folder / name
    if not isinstance(digest, str) or len(digest) != 64:
        raise ModelNotFoundError(f"{listed_in}: the sha256 of {name!r} is not a 64-digit hex string")
    if not _confined(folder, name):
        raise ModelNotFoundError(f"{listed_in}: {name!r} names a file outside the model folder")
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: missing from the model folder")
    if sha256(path) != digest.lower():
        raise ModelNotFoundError(f"{path}: checksum mismatch (corrupt or modified model file)")
    return path


def write_sha256sums(folder: Path, names: list[str]) -> Path:
    """The digest list of an export folder, which the runtime checks every model file against."""
    from parla.files import sha256, write_text_atomic

    return write_text_atomic(folder / SHA256SUMS, "".join(f"{sha256(folder / n)}  {n}\n" for n in sorted(names)))


def export_file(folder: Path, name: str) -> Path:
    """A model file of a 'parla export' folder, verified against the folder's SHA256SUMS."""
    sums = folder / SHA256SUMS
    if not sums.is_file():
        raise ModelNotFoundError(
            f"{folder}: no {SHA256SUMS} (the digest list 'parla export' writes); re-export, or put the models into "
            "a model folder with 'parla train bundle --edge'"
        )
    try:
        with open(sums, "rb") as f:  # bounded: a digest list of a few model files is a few hundred bytes
            data = f.read(MAX_SUMS_BYTES + 1)
    except OSError as e:
        raise ModelNotFoundError(f"{sums}: unreadable ({e.strerror or e})") from e
    if len(data) > MAX_SUMS_BYTES:
        raise ModelNotFoundError(f"{sums}: over {MAX_SUMS_BYTES >> 10} KiB, not the digest list 'parla export' writes")
    listed = {}
    for line in data.decode("utf-8", errors="replace").splitlines()[:1000]:
        digest, _, n = line.partition("  ")
        listed[n.strip()] = digest.strip()
    if name not in listed:
        raise ModelNotFoundError(f"{folder / name}: not listed in {sums}")
    return verified(folder, name, listed[name], sums)


def load_weights(module, path: Path, device: str = "cpu") -> None:
    """safetensors weights into ``module`` (never pickle); a clear error when they do not fit its config."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    try:
        module.load_state_dict(load_file(str(path), device=str(device)))
    except (RuntimeError, OSError, ValueError) as e:  # safetensors raises SafetensorError (an OSError/ValueError)
        raise ModelNotFoundError(f"{path}: unreadable or does not match the model's config.json ({e})") from e
