"""`parla train teacher`: the refiner GAN on self-reenactment pairs (DESIGN §4).

CPU, one CUDA GPU, or several under ``torchrun`` (DistributedDataParallel; each rank draws its own pairs).
Every ``ckpt_every`` steps: refiner + discriminator weights as safetensors, optimiser state (torch.save of
tensors only, loaded with weights_only=True), a CSV log, PNG loss curves and a sample grid.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from parla.models.discriminator import Discriminator, DiscriminatorConfig
from parla.models.refiner import Refiner, RefinerConfig, compose
from parla.training import checkpoint as ckpt
from parla.training import losses as L
from parla.training.data import to_float
from parla.training.stream import batches


@dataclass(frozen=True)
class TeacherTrainConfig:
    steps: int = 20_000
    batch: int = 8
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    gan_start: int = 1_000  # steps of reconstruction-only warm-up before the adversarial losses
    w_l1: float = 1.0
    w_ssim: float = 0.5
    w_mouth: float = 2.0
    w_gan: float = 0.05
    w_fm: float = 1.0
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 250
    sample_every: int = 250


def _setup_distributed(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        backend = "nccl" if device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        rank, local = torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda":
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, torch.device(device)


def _to(batch: dict[str, np.ndarray], dev: torch.device) -> dict[str, torch.Tensor]:
    return {k: to_float(torch.from_numpy(v).to(dev, non_blocking=True)) for k, v in batch.items()}


def _g_step(g, d, b, tc: TeacherTrainConfig, adversarial: bool, mode: str) -> tuple[torch.Tensor, dict, torch.Tensor]:
    rgb, mask = g(b["warped_lr"], b["source_lr"], b["cond"])
    out = compose(b["warped"], b["warped_lr"], rgb, mask, mode)
    size = out.shape[-1]
    boxes = L.mouth_boxes(b["target_lm"], size)
    m_out, m_tgt = L.crop_boxes(out, boxes, 64), L.crop_boxes(b["target"], boxes, 64)
    logs = {
        "l1": L.l1_pyramid(out, b["target"]),
        "ssim": L.ssim_loss(out, b["target"]),
        "mouth": F.l1_loss(m_out, m_tgt),
    }
    loss = tc.w_l1 * logs["l1"] + tc.w_ssim * logs["ssim"] + tc.w_mouth * logs["mouth"]
    if adversarial:
        out_lr = F.interpolate(out, size=b["cond"].shape[-2:], mode="area")
        tgt_lr = F.interpolate(b["target"], size=b["cond"].shape[-2:], mode="area")
        fake = d(out_lr, b["cond"], m_out)
        with torch.no_grad():
            real = d(tgt_lr, b["cond"], m_tgt)
        logs["gan"], logs["fm"] = L.hinge_g(fake), L.feature_matching(real, fake)
        loss = loss + tc.w_gan * logs["gan"] + tc.w_fm * logs["fm"]
    return loss, logs, out


def _d_step(d, b, out: torch.Tensor) -> torch.Tensor:
    size = out.shape[-1]
    boxes = L.mouth_boxes(b["target_lm"], size)
    lr = b["cond"].shape[-2:]
    fake = d(F.interpolate(out.detach(), size=lr, mode="area"), b["cond"], L.crop_boxes(out.detach(), boxes, 64))
    real = d(F.interpolate(b["target"], size=lr, mode="area"), b["cond"], L.crop_boxes(b["target"], boxes, 64))
    return L.hinge_d(real, fake)


def train_teacher(
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    refiner: RefinerConfig | None = None,
    train: TeacherTrainConfig | None = None,
    show: bool = True,
    workers: int = 0,
) -> Path:
    """Train (or resume) the refiner GAN; returns the run folder. ``train.steps`` is the total step count."""
    from parla.progress import progress

    rank, world, dev = _setup_distributed(device)
    run = Path(run_dir)
    state = ckpt.load_state(run) if resume else None
    rc = RefinerConfig.from_dict(state["refiner"]) if state else (refiner or RefinerConfig())
    # A resumed run keeps its recipe; only the length and the batch (e.g. a bigger one on a GPU) may change.
    tc = (
        replace(TeacherTrainConfig(**state["train"]), **({"steps": train.steps, "batch": train.batch} if train else {}))
        if state
        else (train or TeacherTrainConfig())
    )
    dc = DiscriminatorConfig(cond=rc.cond)
    torch.manual_seed(tc.seed + rank)
    g, d = Refiner(rc).to(dev), Discriminator(dc).to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=tc.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr_d, betas=(0.5, 0.999))
    step, fresh_d = ckpt.restore(run, g, d, opt_g, opt_d, dev) if state else (0, False)
    g_adv_from = ckpt.adversarial_from(tc.gan_start, step, fresh_d)
    if world > 1:
        g = torch.nn.parallel.DistributedDataParallel(g)
        d = torch.nn.parallel.DistributedDataParallel(d)
    stream = batches(data_dir, rc.res, tc.batch, seed=tc.seed * 1000 + rank + step, workers=workers)
    if rank == 0:
        ckpt.write_config(
            run,
            {
                "kind": "teacher",
                "refiner": rc.to_dict(),
                "discriminator": dc.to_dict(),
                "train": asdict(tc),
                "data": str(data_dir),
                "device": device,
                "world": world,
            },
        )
    log = ckpt.CsvLog(run / "log.csv") if rank == 0 else None
    t0, sums = time.time(), {}
    with progress(tc.steps - step, "teacher", enabled=show and rank == 0, unit="step") as bar:
        while step < tc.steps:
            b = _to(next(stream), dev)
            loss, logs, out = _g_step(g, d, b, tc, step >= g_adv_from, rc.mode)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if step >= tc.gan_start:
                loss_d = _d_step(d, b, out)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                logs["d"] = loss_d
            step += 1
            bar.update(1)
            for k, v in logs.items():  # the log shows means over the interval, not one noisy batch
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if log and step % tc.log_every == 0:
                n = tc.log_every
                log.write(step, time.time() - t0, {k: v / n for k, v in sums.items()})
                sums = {}
            if rank == 0 and (step % tc.ckpt_every == 0 or step == tc.steps):
                _unwrap = getattr(g, "module", g)
                ckpt.save(run, _unwrap, getattr(d, "module", d), opt_g, opt_d, step)
                ckpt.plot_losses(run / "log.csv", run / "loss.png")
            if rank == 0 and step % tc.sample_every == 0:
                ckpt.sample_grid(run / "samples" / f"step_{step:06d}.png", b, out)
    if world > 1:
        torch.distributed.destroy_process_group()
    return run
