"""`parla distill`: the teacher refiner -> a narrow edge student (DESIGN §4).

Each batch mixes real self-reenactment pairs (teacher output and ground truth as targets) and synthetic pairs
(a training face photo or video frame driven by a random motion from the expression basis: only the teacher's
output as the target, so the student also learns the poses and mouth shapes that the 59 clips lack).
Losses: multi-scale L1 + SSIM + mouth L1 to the teacher, L1 to the ground truth on the real rows, hinge GAN
against real frames with a fresh discriminator. Checkpoints, CSV log, loss curves and samples as the teacher's.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from parla.errors import ModelNotFoundError, ParlaError
from parla.face.expression import ExpressionBasis
from parla.models.discriminator import Discriminator, DiscriminatorConfig
from parla.models.refiner import Refiner, RefinerConfig, compose
from parla.training import checkpoint as ckpt
from parla.training import losses as L
from parla.training.data import PairSampler, load_clips, make_batch

# 16-32-64-128 with one bottleneck block: 0.66 GMAC at 128², under a quarter of the teacher's 2.88.
STUDENT = RefinerConfig(channels=(16, 32, 64, 128), n_res=1)
POSE_RANGE = np.array([10.0, 6.0, 4.0, 4.0, 4.0, 0.03])  # yaw°, pitch°, roll°, tx px, ty px, log-scale


@dataclass(frozen=True)
class DistillConfig:
    steps: int = 4_000
    batch: int = 8
    synthetic: float = 0.5  # fraction of each batch drawn from synthetic pairs
    lr_g: float = 5e-4
    lr_d: float = 2e-4
    gan_start: int = 1_000
    w_teacher: float = 1.0
    w_gt: float = 0.5
    w_ssim: float = 0.5
    w_mouth: float = 2.0
    w_gan: float = 0.05
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 250
    sample_every: int = 500


def load_teacher(path: str | Path, dev: torch.device) -> tuple[Refiner, ExpressionBasis, str]:
    """A teacher from a model bundle (``default`` or a folder with config.json) or a teacher run folder."""
    from parla.modelfolder import ModelFolder
    from parla.training.checkpoint import load_weights

    p = Path(path)
    if str(path) == "default" or ((p / "config.json").is_file() and (p / "basis.npz").is_file()):
        folder = ModelFolder(path)
        g, _ = folder.refiner("teacher", device=str(dev))
        return g, folder.basis, folder.version()
    if (p / "state.json").is_file():
        state = json.loads((p / "state.json").read_text())
        g = Refiner(RefinerConfig.from_dict(state["refiner"])).to(dev).eval()
        load_weights(g, p / "refiner.safetensors", dev)
        basis_path = Path(state["data"]) / "basis.npz"
        if not basis_path.is_file():
            raise ModelNotFoundError(f"{basis_path}: the teacher run's expression basis is missing")
        return g, ExpressionBasis.load(basis_path), f"teacher-step{state['step']}"
    raise ModelNotFoundError(f"{path}: not a teacher run or a model bundle")


class SyntheticSampler:
    """Random motions applied to source faces: (source crop, landmarks) -> warped pairs without ground truth."""

    def __init__(
        self, sources: list[tuple[np.ndarray, np.ndarray]], basis: ExpressionBasis, res: int, seed: int
    ) -> None:
        if not sources:
            raise ParlaError("no source faces for synthetic pairs")
        self.sources, self.basis, self.res = sources, basis, res
        self.rng = np.random.default_rng(seed)

    def _driving(self, lm: np.ndarray) -> np.ndarray:
        r = self.rng
        coeffs = np.clip(r.normal(size=self.basis.n_components), -2.5, 2.5) * self.basis.stds * r.uniform(0.5, 2.0)
        pose = r.uniform(-1, 1, 6) * POSE_RANGE
        blink = 0.0 if r.random() < 0.7 else r.random()
        close = 0.0 if r.random() < 0.7 else r.random()
        return self.basis.drive(lm, coeffs, pose, blink, close)

    def batch(self, n: int) -> dict[str, np.ndarray]:
        items = []
        for _ in range(n):
            src, lm = self.sources[self.rng.integers(len(self.sources))]
            items.append((src, None, lm, self._driving(lm)))
        return make_batch(items, self.res)


def face_sources(
    clips, photos_dir: Path | None, cache: Path, seed: int, per_clip: int = 8, show: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Source faces for synthetic pairs: a few frames of every clip, plus the aligned training photos
    (aligned once and cached in the run folder)."""
    rng = np.random.default_rng(seed)
    out = [
        (np.asarray(c.crops[i]), c.landmarks[i].astype(np.float64))
        for c in clips
        for i in rng.choice(c.valid_idx, min(per_clip, len(c.valid_idx)), replace=False)
    ]
    if photos_dir is None or not photos_dir.is_dir():
        return out
    if not cache.is_file():
        _align_photos(photos_dir, cache, show)
    with np.load(cache) as z:
        out += list(zip(z["crops"], z["landmarks"].astype(np.float64), strict=True))
    return out


def _align_photos(photos_dir: Path, cache: Path, show: bool) -> None:
    from parla.errors import ParlaError as _E
    from parla.face.portrait import Portrait
    from parla.files import atomic_output
    from parla.progress import progress

    crops, lms = [], []
    files = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with progress(len(files), "aligning photos", enabled=show, unit="photo") as bar:
        for f in files:
            try:
                p = Portrait.load(f, 128)
                crops.append(p.crop)
                lms.append(p.landmarks)
            except _E:
                pass  # no usable face: skipped
            bar.update(1)
    import io

    buf = io.BytesIO()
    np.savez(buf, crops=np.stack(crops), landmarks=np.stack(lms))
    with atomic_output(cache) as tmp:
        tmp.write_bytes(buf.getvalue())


def _losses(s_out, t_out, b, real_rows: int, dc: DistillConfig) -> tuple[torch.Tensor, dict]:
    size = s_out.shape[-1]
    boxes = L.mouth_boxes(b["target_lm"], size)
    m_s, m_t = L.crop_boxes(s_out, boxes, 64), L.crop_boxes(t_out, boxes, 64)
    logs = {"t_l1": L.l1_pyramid(s_out, t_out), "t_ssim": L.ssim_loss(s_out, t_out), "t_mouth": F.l1_loss(m_s, m_t)}
    loss = dc.w_teacher * (logs["t_l1"] + dc.w_ssim * logs["t_ssim"] + dc.w_mouth * logs["t_mouth"])
    if real_rows:
        logs["gt_l1"] = L.l1_pyramid(s_out[:real_rows], b["target"])
        loss = loss + dc.w_gt * logs["gt_l1"]
    return loss, logs


def _merge(real: dict[str, np.ndarray], syn: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([real[k], syn[k]]) for k in syn}
    out["target"] = real["target"]
    return out


def train_student(
    teacher: str | Path,
    run_dir: str | Path,
    *,
    data_dir: str | Path,
    photos: str | Path | None,
    device: str = "cpu",
    resume: bool = False,
    student: RefinerConfig | None = None,
    train: DistillConfig | None = None,
    show: bool = True,
) -> Path:
    """Distill (or resume); returns the run folder, which ``parla export`` and ``parla train bundle`` read."""
    from parla.progress import progress

    dev = torch.device(device)
    run = Path(run_dir)
    state = ckpt.load_state(run) if resume else None
    sc = RefinerConfig.from_dict(state["refiner"]) if state else (student or STUDENT)
    dc = (
        replace(DistillConfig(**state["train"]), **({"steps": train.steps} if train else {}))
        if state
        else (train or DistillConfig())
    )
    torch.manual_seed(dc.seed)
    t_net, basis, t_version = load_teacher(teacher, dev)
    t_net.eval().requires_grad_(False)
    if t_net.cfg.res != sc.res or t_net.cfg.crop != sc.crop or t_net.cfg.mode != sc.mode:
        raise ParlaError("the student must keep the teacher's resolution, crop and output mode")
    g, d = Refiner(sc).to(dev), Discriminator(DiscriminatorConfig(cond=sc.cond)).to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=dc.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=dc.lr_d, betas=(0.5, 0.999))
    step, fresh_d = ckpt.restore(run, g, d, opt_g, opt_d, dev) if state else (0, False)
    g_adv_from = ckpt.adversarial_from(dc.gan_start, step, fresh_d)
    clips = load_clips(data_dir)
    run.mkdir(parents=True, exist_ok=True)
    sources = face_sources(clips, Path(photos) if photos else None, run / "photo_faces.npz", dc.seed, show=show)
    real_s = PairSampler(clips, sc.res, seed=dc.seed * 1000 + 7 + step)
    syn_s = SyntheticSampler(sources, basis, sc.res, seed=dc.seed * 1000 + 11 + step)
    ckpt.write_config(
        run,
        {
            "kind": "student",
            "refiner": sc.to_dict(),
            "train": asdict(dc),
            "data": str(data_dir),
            "photos": str(photos) if photos else None,
            "teacher": str(teacher),
            "teacher_version": t_version,
            "device": device,
            "world": 1,
        },
    )
    n_syn = int(round(dc.batch * dc.synthetic))
    log, t0, sums = ckpt.CsvLog(run / "log.csv"), time.time(), {}
    with progress(dc.steps - step, "distill", enabled=show, unit="step") as bar:
        while step < dc.steps:
            b = {
                k: torch.from_numpy(v).to(dev)
                for k, v in _merge(real_s.batch(dc.batch - n_syn), syn_s.batch(n_syn)).items()
            }
            with torch.no_grad():
                t_out = compose(b["warped"], b["warped_lr"], *t_net(b["warped_lr"], b["source_lr"], b["cond"]), sc.mode)
            rgb, mask = g(b["warped_lr"], b["source_lr"], b["cond"])
            s_out = compose(b["warped"], b["warped_lr"], rgb, mask, sc.mode)
            loss, logs = _losses(s_out, t_out, b, dc.batch - n_syn, dc)
            gan_on = step >= dc.gan_start and dc.batch > n_syn
            if gan_on and step >= g_adv_from:
                logs["gan"] = L.hinge_g(_disc(d, s_out, b))
                loss = loss + dc.w_gan * logs["gan"]
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if gan_on:
                real_b = {"target_lm": b["target_lm"][: dc.batch - n_syn], "cond": b["cond"][: dc.batch - n_syn]}
                logs["d"] = L.hinge_d(_disc(d, b["target"], real_b), _disc(d, s_out.detach(), b))
                opt_d.zero_grad(set_to_none=True)
                logs["d"].backward()
                opt_d.step()
            step += 1
            bar.update(1)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if step % dc.log_every == 0:
                log.write(step, time.time() - t0, {k: v / dc.log_every for k, v in sums.items()})
                sums = {}
            if step % dc.ckpt_every == 0 or step == dc.steps:
                ckpt.save(run, g, d, opt_g, opt_d, step)
                ckpt.plot_losses(run / "log.csv", run / "loss.png")
            if step % dc.sample_every == 0:
                grid = dict(b, target=t_out)  # rows: source | host warp | student | teacher
                ckpt.sample_grid(run / "samples" / f"step_{step:06d}.png", grid, s_out)
    return run


def _disc(d, images: torch.Tensor, b: dict) -> list:
    boxes = L.mouth_boxes(b["target_lm"], images.shape[-1])
    lr = F.interpolate(images, size=b["cond"].shape[-2:], mode="area")
    return d(lr, b["cond"], L.crop_boxes(images, boxes, 64))
