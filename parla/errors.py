"""Typed exceptions. The CLI turns every ``ParlaError`` into one line on stderr and a non-zero exit code."""

from __future__ import annotations


class ParlaError(Exception):
    """Base class for every error a user can cause or fix."""

    exit_code = 2


class InputFileError(ParlaError):
    """An input path is missing, is a directory, or cannot be read."""


class OutputPathError(ParlaError):
    """An output path cannot be written (missing directory, no permission, read-only file system)."""


class ImageReadError(ParlaError):
    """A file is not a readable image."""


class NoFaceFoundError(ParlaError):
    """No face was found in an image."""


class AmbiguousFaceError(ParlaError):
    """Several faces of similar size were found and none was chosen (use --face-index)."""


class FaceIndexError(ParlaError):
    """--face-index names a face that does not exist."""


class AudioFormatError(ParlaError):
    """The audio is in an unsupported format, is corrupt, or the file has no audio stream."""


class EmptyAudioError(AudioFormatError):
    """The audio holds no samples."""


class SilentAudioError(AudioFormatError):
    """The audio holds only silence."""


class VideoFormatError(ParlaError):
    """A video cannot be decoded or has no video stream."""


class ConfigError(ParlaError):
    """A configuration file or value is invalid."""


class MissingDependencyError(ParlaError):
    """An optional package is not installed; the message names the extra that provides it."""


class BackendUnavailableError(ParlaError):
    """A runtime or device is not available on this machine."""


class ModelNotFoundError(ParlaError):
    """No model is bundled, the named checkpoint does not exist, or a model file fails its checksum."""


TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # README command 2's index: never a CUDA build


def require(module: str, extra: str):
    """Import an optional dependency, or raise MissingDependencyError naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        if module == "torch":  # pip would pull a CUDA build of torch for 'parla[train]' alone: name the CPU build
            raise MissingDependencyError(
                f"PyTorch is needed for this (the FP32 reference and training); install its CPU build first: "
                f"pip install torch==2.13.0 --extra-index-url {TORCH_CPU_INDEX} && pip install 'parla[{extra}]'"
            ) from e
        raise MissingDependencyError(
            f"the '{module}' package is needed for this; install it with: pip install 'parla[{extra}]'"
        ) from e
