"""Self-reenactment pairs from a prepared dataset: source and target frames of one clip, the source warped
onto the target's landmarks by the host warp, at the refiner's resolution and at full crop resolution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parla.errors import ParlaError
from parla.face.warp import downsize, warp_inputs

# iBUG 68-point index of each point's mirror image (for horizontal-flip augmentation).
FLIP = np.array(
    list(range(16, -1, -1))
    + list(range(26, 21, -1))
    + list(range(21, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)
MIN_GAP = 3  # frames: source and target differ by at least this much


@dataclass
class Clip:
    name: str
    crops: np.ndarray  # memmap (T, S, S, 3) uint8
    landmarks: np.ndarray  # (T, 68, 2)
    valid_idx: np.ndarray  # indices of frames with a face


IMAGE_KEYS = ("source", "warped", "target", "source_lr", "warped_lr")


def _well_aligned(lms: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Frames whose face sits where the crop alignment put it. A clip with two people (an interview) or a
    tracking slip yields frames whose landmarks are far from the smoothed alignment: such pairs taught the
    refiner to hallucinate whole faces (seen in the step-250 samples), so they are left out."""
    from parla.face.landmarks import eye_centres

    le, re = eye_centres(lms)
    iod = np.linalg.norm(re - le, axis=-1)
    mid = (le + re) / 2
    ok = valid & ~np.isnan(iod)
    if not ok.any():
        return ok
    ref_iod, ref_mid = np.median(iod[ok]), np.median(mid[ok], axis=0)
    return ok & (np.abs(np.log(iod / ref_iod)) < np.log(1.3)) & (np.linalg.norm(mid - ref_mid, axis=-1) < 0.6 * ref_iod)


def load_clips(data_dir: str | Path) -> list[Clip]:
    clips_dir = Path(data_dir) / "clips"
    clips = []
    for meta_path in sorted(clips_dir.glob("*.npz")):
        crops_path = meta_path.with_name(meta_path.stem + ".crops.npy")
        if not crops_path.is_file():
            continue
        with np.load(meta_path) as z:
            lms, valid = z["landmarks"], z["valid"]
        idx = np.flatnonzero(_well_aligned(lms, valid))
        if len(idx) > MIN_GAP + 1:
            clips.append(Clip(meta_path.stem, np.load(crops_path, mmap_mode="r"), lms, idx))
    if not clips:
        raise ParlaError(f"{data_dir}: no prepared clips (run 'parla prepare VIDEOS -o {data_dir}' first)")
    return clips


def to_tensor_layout(images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1]."""
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


class PairSampler:
    """Draws batches of (source, warped source, target) with their conditioning; deterministic per seed."""

    def __init__(self, clips: list[Clip], res: int, *, seed: int = 0, flip: bool = True) -> None:
        self.clips, self.res, self.flip = clips, res, flip
        self.rng = np.random.default_rng(seed)
        sizes = np.array([len(c.valid_idx) for c in clips], np.float64)
        self.p = np.sqrt(sizes) / np.sqrt(sizes).sum()  # long clips count more, but not linearly

    def _pair(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        clip = self.clips[self.rng.choice(len(self.clips), p=self.p)]
        for _ in range(10):
            s, t = self.rng.choice(clip.valid_idx, 2, replace=False)
            if abs(int(s) - int(t)) >= MIN_GAP:
                break
        src, tgt = np.asarray(clip.crops[s]), np.asarray(clip.crops[t])
        ls, lt = clip.landmarks[s].astype(np.float64), clip.landmarks[t].astype(np.float64)
        if self.flip and self.rng.random() < 0.5:
            size = src.shape[1]
            src, tgt = src[:, ::-1].copy(), tgt[:, ::-1].copy()
            ls, lt = _flip_lm(ls, size), _flip_lm(lt, size)
        return src, tgt, ls, lt

    def batch(self, n: int) -> dict[str, np.ndarray]:
        return make_batch([self._pair() for _ in range(n)], self.res)


def to_float(t):
    """A batch image tensor as float32 in [-1, 1], whether it came as uint8 (worker processes) or float."""
    import torch

    return t.float() / 127.5 - 1.0 if t.dtype == torch.uint8 else t


def make_batch(
    pairs: list[tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]], res: int
) -> dict[str, np.ndarray]:
    """(source crop, target crop or None, source landmarks, driving landmarks) per item -> the refiner's batch:
    the source warped onto the driving landmarks at full and at ``res`` resolution, the landmark maps, and the
    target where there is one (real pairs; synthetic pairs have none)."""
    keys = ("source", "warped", "target", "source_lr", "warped_lr", "cond", "target_lm")
    out: dict[str, list] = {k: [] for k in keys}
    for src, tgt, ls, lt in pairs:
        w, w_lr, cond, _ = warp_inputs(src, ls, lt, res)
        out["source"].append(src)
        out["warped"].append(w)
        if tgt is not None:
            out["target"].append(tgt)
        out["source_lr"].append(downsize(src, res))
        out["warped_lr"].append(w_lr)
        out["cond"].append(cond)
        out["target_lm"].append(lt.astype(np.float32))
    images = [k for k in IMAGE_KEYS if out[k]]
    batch = {k: to_tensor_layout(np.stack(out[k])) for k in images}
    batch["cond"] = np.stack(out["cond"]).astype(np.float32)
    batch["target_lm"] = np.stack(out["target_lm"])
    return batch


def _flip_lm(lm: np.ndarray, size: int) -> np.ndarray:
    out = lm[FLIP].copy()
    out[:, 0] = (size - 1) - out[:, 0]
    return out
