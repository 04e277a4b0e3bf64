"""Package data: the bundled default model (``default/``, located by ``parla.modelfolder``), the demo portrait
and speech (``demo/``), the lip-sync probe and the model card."""

from __future__ import annotations

from pathlib import Path


def demo_file(name: str) -> Path:
    """A file of the bundled demo (``portrait.jpg``, ``speech.wav``): public-domain photo, self-made speech."""
    from importlib.resources import as_file, files

    with as_file(files("parla") / "assets" / "demo" / name) as p:
        return Path(p)
