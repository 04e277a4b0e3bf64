"""Run folders: config.json, safetensors weights, optimiser state, state.json (the commit point), CSV log,
loss curves and sample grids. Each file is written under a temporary name and renamed, state.json last, so an
interrupted save leaves the previous checkpoint intact."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import torch

from parla.files import atomic_output, sha256, write_text_atomic
from parla.modelfolder import load_weights

log = logging.getLogger(__name__)

__all__ = ["load_weights", "sha256"]  # re-exported: training code loads and hashes through this module


def write_config(run: Path, config: dict) -> None:
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.json", json.dumps(config, indent=2) + "\n")


def save_weights(module: torch.nn.Module, path: Path) -> str:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp))
    return sha256(path)


def save(run: Path, g, d, opt_g, opt_d, step: int) -> None:
    digests = {
        "refiner.safetensors": save_weights(g, run / "refiner.safetensors"),
        "discriminator.safetensors": save_weights(d, run / "discriminator.safetensors"),
    }
    with atomic_output(run / "optim.pt") as tmp:
        torch.save({"g": opt_g.state_dict(), "d": opt_d.state_dict()}, tmp)
    config = json.loads((run / "config.json").read_text())
    write_text_atomic(run / "state.json", json.dumps({"step": step, "sha256": digests, **config}, indent=2) + "\n")


def load_state(run: Path) -> dict | None:
    p = run / "state.json"
    return json.loads(p.read_text()) if p.is_file() else None


def restore(run: Path, g, d, opt_g, opt_d, device: torch.device) -> tuple[int, bool]:
    """Load a run's last checkpoint into the modules; returns (step, whether the discriminator starts fresh).

    A run seeded from a shipped model (a generator, no discriminator) resumes with a fresh discriminator and a
    fresh optimiser; the trainer then keeps the generator off the adversarial terms until the new critic has
    trained (``D_WARMUP`` steps)."""
    state = load_state(run)
    if state is None:
        return 0, False
    load_weights(g, run / "refiner.safetensors", device)
    fresh_d = not (run / "discriminator.safetensors").is_file()
    if fresh_d:
        log.warning("%s: no discriminator.safetensors, resuming the generator with a fresh discriminator", run)
    else:
        load_weights(d, run / "discriminator.safetensors", device)
    if fresh_d or not (run / "optim.pt").is_file():  # e.g. weights carried to a GPU machine without the Adam state
        log.warning("%s: no optim.pt, resuming from the weights with a fresh optimiser", run)
        return int(state["step"]), fresh_d
    opt = torch.load(run / "optim.pt", map_location=device, weights_only=True)
    opt_g.load_state_dict(opt["g"])
    opt_d.load_state_dict(opt["d"])
    return int(state["step"]), fresh_d


D_WARMUP = 250  # steps a fresh discriminator trains alone before the generator's adversarial terms resume


def adversarial_from(gan_start: int, step: int, fresh_d: bool) -> int:
    """The step from which the generator takes the adversarial terms: ``gan_start``, or after ``D_WARMUP`` steps of
    a fresh discriminator's own training when ``restore`` started one."""
    return max(gan_start, step + D_WARMUP) if fresh_d else gan_start


class CsvLog:
    """Appends one row per logged step; the header grows when a new loss appears (e.g. the GAN terms)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, step: int, seconds: float, values: dict[str, float]) -> None:
        rows, fields = [], ["step", "seconds"]
        if self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                fields = list(reader.fieldnames or fields)
                rows = list(reader)
        rows = [r for r in rows if int(r["step"]) < step]  # a resumed run overwrites steps it redoes
        for k in values:
            if k not in fields:
                fields.append(k)
        rows.append({"step": step, "seconds": f"{seconds:.1f}", **{k: f"{v:.5f}" for k, v in values.items()}})
        with atomic_output(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def plot_losses(csv_path: Path, png_path: Path) -> None:
    if not csv_path.is_file():  # nothing logged yet
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("step", "seconds")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.6), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        pts = [(int(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "")]
        if pts:
            ax.plot(*zip(*pts, strict=True), lw=0.8)
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def sample_grid(path: Path, batch: dict, out: torch.Tensor, n: int = 4) -> None:
    """Rows of source | host warp | refiner output | target."""
    from parla.media.image import save_image

    def img(t: torch.Tensor) -> np.ndarray:
        return ((t.detach().float().cpu().numpy().transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)

    rows = [
        np.concatenate([img(batch["source"][i]), img(batch["warped"][i]), img(out[i]), img(batch["target"][i])], 1)
        for i in range(min(n, len(out)))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, np.concatenate(rows, 0))
