"""The small default models shipped inside the package, located with importlib.resources."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from parla.errors import ModelNotFoundError

DEFAULT_MODEL = "default"  # folder under parla/assets/ holding the bundled model's config and weights


def bundled_model(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a bundled model; raises ModelNotFoundError when none is shipped."""
    folder = resources.files("parla.assets") / name
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            "no trained model is bundled with this version of Parla yet; "
            "train one with 'parla train' (issue 3) or pass a checkpoint"
        )
    return Path(str(folder))
