"""Backends that run the exported refiner: one small interface (``base.Backend``), one file per runtime, lazy
imports. ``open_model(path)`` picks the backend from the file's suffix (the format table)."""

from __future__ import annotations

from pathlib import Path

from parla.edge.backends.base import Backend, open_model

__all__ = ["Backend", "open_model", "Path"]
