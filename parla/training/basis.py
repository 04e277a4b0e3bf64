"""Fit the expression basis: PCA of canonical landmark offsets from each clip's own median shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parla.errors import ParlaError
from parla.face.expression import ExpressionBasis, apply, similarity_fit

N_COMPONENTS = 12  # of the lip and jaw offsets (see meta["explained"])
# Only the lips and the lower jaw carry speech: eyes, brows and the pose-induced deformation of the outline are
# not predictable from audio and would only add noise to the audio->motion targets (blinks and head motion have
# their own models). Measured: with all 68 points, the motion net's held-out mouth correlation fell as it fitted
# those components.
EXPRESSION_POINTS = np.r_[3:14, 48:68]


def load_clip(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def clip_offsets(lms: np.ndarray, mean_shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(canonical shapes, offsets from their median) of the (T, 68, 2) valid landmarks of one clip."""
    canon = np.stack([apply(similarity_fit(lm.astype(np.float64), mean_shape), lm.astype(np.float64)) for lm in lms])
    return canon, canon - np.median(canon, axis=0)


def fit_basis(clips_dir: Path, n_components: int = N_COMPONENTS) -> ExpressionBasis:
    clips = [load_clip(p) for p in sorted(clips_dir.glob("*.npz"))]
    shapes = [c["landmarks"][c["valid"]] for c in clips if c["valid"].sum() > 0]
    if not shapes:
        raise ParlaError(f"{clips_dir}: no prepared clip with a face; cannot fit the expression basis")
    mean_shape = np.concatenate(shapes).mean(0).astype(np.float64)
    for _ in range(2):  # generalised Procrustes: re-estimate the mean in its own frame
        mean_shape = np.concatenate([clip_offsets(s, mean_shape)[0] for s in shapes]).mean(0)
    offsets = np.concatenate([clip_offsets(s, mean_shape)[1] for s in shapes])
    keep = np.zeros(68, bool)
    keep[EXPRESSION_POINTS] = True
    offsets[:, ~keep] = 0.0
    offsets = offsets.reshape(-1, 136)
    _, sv, vt = np.linalg.svd(offsets - offsets.mean(0), full_matrices=False)
    var = sv**2
    comps = vt[:n_components]
    stds = np.sqrt(var[:n_components] / len(offsets))
    meta = {
        "frames": int(len(offsets)),
        "clips": len(shapes),
        "points": EXPRESSION_POINTS.tolist(),
        "explained": float(var[:n_components].sum() / var.sum()),
    }
    return ExpressionBasis(mean_shape.astype(np.float32), comps.astype(np.float32), stds.astype(np.float32), meta)


def fit_rest(clips: list[np.ndarray], basis: ExpressionBasis, *, shape: bool = False) -> dict[str, object]:
    """The opening direction, rest opening (and with ``shape`` the rest shape) of ``ExpressionBasis.rest_offset``
    from (T, 68, 2) landmark tracks.

    direction: the coefficients per unit of inner-lip gap, regressed within each clip (coefficients are offsets
    from the clip's median shape, so they are regressed on the gap's offset from the clip's median gap);
    rest_opening: the median over clips of each clip's median gap, the gap that coefficient zero stands for;
    shape_shrink, shape_center: per coefficient, the clip's median mouth regressed on any one of its frames (both
    as coefficients of their offset from the basis' mean shape, each clip weighted equally), so that
    ``shape_center + shape_shrink * frame`` estimates a speaker's median mouth from one photo of them. Measured, not
    shipped: it moves a photo's smile, which costs identity (docs/decisions.md).
    """
    from parla.face.landmarks import mouth_opening

    mean = basis.mean_shape.astype(np.float64)
    xs, ys, medians, frames, centres, weights = [], [], [], [], [], []
    for lms in clips:
        if len(lms) < 10:
            continue
        canon, offsets = clip_offsets(lms, mean)
        gap = mouth_opening(canon)
        medians.append(float(np.median(gap)))
        xs.append(gap - np.median(gap))
        ys.append(basis.encode(offsets))
        if shape:
            frames.append(basis.encode(canon - mean))
            centres.append(np.repeat(basis.encode(np.median(canon, 0) - mean)[None], len(canon), 0))
            weights.append(np.full(len(canon), 1.0 / len(canon)))
    if not xs:
        raise ParlaError("no landmark track of 10 frames or more: cannot fit the mouth's rest opening")
    x, y = np.concatenate(xs), np.concatenate(ys)
    direction = (x @ y) / max(float(x @ x), 1e-12)
    rest = {"open_direction": direction.tolist(), "rest_opening": float(np.median(medians))}
    if not shape:
        return rest
    f, c, w = np.concatenate(frames), np.concatenate(centres), np.concatenate(weights)[:, None]
    f_mean, c_mean = (w * f).sum(0) / w.sum(), (w * c).sum(0) / w.sum()
    var = (w * (f - f_mean) ** 2).sum(0)
    shrink = (w * (f - f_mean) * (c - c_mean)).sum(0) / np.maximum(var, 1e-12)
    shrink = np.where(var > 1e-12, np.clip(shrink, 0.0, 1.0), 1.0)  # one clip, or a still one: keep the photo
    return {**rest, "shape_shrink": shrink.tolist(), "shape_center": (c_mean - shrink * f_mean).tolist()}
