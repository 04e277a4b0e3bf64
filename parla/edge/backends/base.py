"""The backend interface: one static-shape graph with one input and one output, e.g. the refiner
x (1, 9, r, r) float32 -> y (1, 4, r, r) float32, or the motion net mel (1, 80, W) -> coeffs (1, K, W)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from parla.errors import ModelNotFoundError, ParlaError


class Backend:
    """Subclasses load ``path`` in ``__init__`` and implement ``_run``; ``meta`` holds the file's ``parla.*``
    metadata (version, refiner config, layout), read from the file itself."""

    name = "base"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        self.path, self.device, self.threads = Path(path), device, threads
        if not self.path.is_file():
            raise ModelNotFoundError(f"{self.path}: no such model file")
        self.meta: dict[str, str] = {}

    @property
    def precision(self) -> str:
        return self.meta.get("parla.precision", "fp32")

    @property
    def refiner_config(self) -> dict:
        return json.loads(self.meta["parla.refiner_config"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(json.loads(self.meta["parla.shape"]))

    @property
    def kind(self) -> str:
        """``refiner`` or ``motion``."""
        return self.meta["parla.model"]

    def _check_meta(self) -> None:
        if self.meta.get("parla.model") not in ("refiner", "motion"):
            raise ModelNotFoundError(f"{self.path}: not a Parla model export (no parla metadata)")

    def run(self, x: np.ndarray) -> np.ndarray:
        """(B, ...) float32 -> (B, ...) float32, one static-shape call per item."""
        if x.ndim != len(self.input_shape) or x.shape[1:] != self.input_shape[1:]:
            raise ParlaError(
                f"{self.path.name}: expected input (B, {', '.join(map(str, self.input_shape[1:]))}), got {x.shape}"
            )
        return np.concatenate([self._run(np.ascontiguousarray(x[i : i + 1], np.float32)) for i in range(len(x))])

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def corrupt(path: Path, e: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(f"{path}: unreadable model file (corrupt or truncated?): {str(e).splitlines()[0][:200]}")


def backend_class(backend: str) -> type[Backend]:
    """The backend class of a runtime backend name, from the format table (imported lazily)."""
    import importlib

    from parla.formats import by_backend

    module, cls = by_backend(backend).backend_class.split(":")
    return getattr(importlib.import_module(module), cls)


def open_model(path: str | Path, device: str | None = None, threads: int | None = None) -> Backend:
    """The backend for an exported model file, by its suffix (.onnx, .xml, .tflite); device: the backend's CPU
    unless given."""
    from parla.formats import by_suffix

    fmt = by_suffix(Path(path).suffix)
    return backend_class(fmt.backend)(path, device=device or fmt.cpu_device, threads=threads)


def open_for_config(
    path: str | Path,
    backend: str,
    device: str,
    *,
    threads: int | None = None,
    delegate: str | None = None,
    fallback_to_cpu: bool = False,
    **kwargs,
) -> Backend:
    """Open ``path`` on the configured device; if that device is unavailable and the config allows it, fall
    back to the backend's CPU device and log it (the error names the fix when fallback is off)."""
    import logging

    from parla.formats import by_backend

    cls = backend_class(backend)
    if delegate:
        kwargs["delegate"] = delegate
    try:
        return cls(path, device=device, threads=threads, **kwargs)
    except ModelNotFoundError:
        raise
    except ParlaError as e:
        cpu = by_backend(backend).cpu_device
        if not fallback_to_cpu or device == cpu:
            raise
        logging.getLogger("parla").warning("%s; falling back to %s %s (fallback_to_cpu: true)", e, backend, cpu)
        kwargs.pop("delegate", None)
        return cls(path, device=cpu, threads=threads, **kwargs)
