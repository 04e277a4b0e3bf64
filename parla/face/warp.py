"""Host warp: thin-plate-spline flow from landmark displacements, applied with cv2.remap (DESIGN §3).

Kept outside every exported network: an 8-bit grid_sample wrecks INT8 accuracy and LiteRT lowers it to slow
gathers (toolchain.md). Also rasterises the driving-landmark maps the refiner is conditioned on.
"""

from __future__ import annotations

import functools

import numpy as np

from parla.errors import require

GRID = 33  # the spline is evaluated on GRID x GRID points, then interpolated (smooth, so no loss)
ANCHORS_PER_SIDE = 6  # fixed points on each crop border keep the background still
REGULARISATIONS = (1e-3, 1e-1, 1e1, 1e3)  # the spline's smoothing: the first whose map does not fold is used
N_COND = 3  # conditioning channels: inner mouth, eyes, landmark lines
# Closing eyelids and lips bring two control points onto one spot with different sources; the spline then folds
# (a swirl over the face). No landmark pair may be squeezed below this fraction of its distance in the source:
# beyond it, the later point's source slides towards the earlier one's (the upper lid's or upper lip's skin).
MIN_COMPRESSION = 0.5
MIN_JACOBIAN = 0.05  # the guard: a backward map whose area ratio falls below this somewhere is degenerate


def _kernel(r2: np.ndarray) -> np.ndarray:
    return r2 * np.log(np.maximum(r2, 1e-300))  # r² log r² (0 at 0)


@functools.lru_cache(maxsize=4)
def _anchors(size: int) -> np.ndarray:
    t = np.linspace(0, size, ANCHORS_PER_SIDE, endpoint=False)
    s = float(size)
    return np.concatenate(
        [
            np.stack([t, np.zeros_like(t)], 1),
            np.stack([np.full_like(t, s), t], 1),
            np.stack([s - t, np.full_like(t, s)], 1),
            np.stack([np.zeros_like(t), s - t], 1),
        ]
    )


@functools.lru_cache(maxsize=4)
def _upsampler(size: int) -> np.ndarray:
    """(size, GRID) linear-interpolation weights from the GRID samples to every pixel (corners aligned)."""
    pos = np.arange(size) * (GRID - 1) / (size - 1)
    lo = np.minimum(np.floor(pos).astype(int), GRID - 2)
    frac = pos - lo
    w = np.zeros((size, GRID))
    w[np.arange(size), lo] = 1 - frac
    w[np.arange(size), lo + 1] = frac
    return w


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> np.ndarray:
    g = np.linspace(0, size - 1, GRID)  # corners included, so the anchored border maps exactly
    gx, gy = np.meshgrid(g, g)
    return np.stack([gx.ravel(), gy.ravel()], 1)


@functools.lru_cache(maxsize=4)
def _grid_tail(size: int) -> np.ndarray:
    """The evaluation matrix's columns that do not depend on the driving shape, in the spline's fixed frame: the
    kernels to the border anchors (which never move), then the affine part (1, x, y)."""
    scale = size / 256.0
    g = _grid(size) / scale
    return np.concatenate([_kernel(_sq_distances(g, _anchors(size) / scale)), np.ones((len(g), 1)), g], 1)


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances between 2-d points, written out (a sum over an axis of length 2 costs
    ten times more: 2.4 of a 10 ms frame on the 33² spline grid)."""
    dx, dy = a[:, :1] - b[:, 0], a[:, 1:] - b[:, 1]
    return dx * dx + dy * dy


def reconcile(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Sources adjusted so that no pair of points is squeezed below MIN_COMPRESSION of its source distance: for
    each point, the earlier point it is squeezed against most pulls its source along (continuously: nothing moves
    until the ratio falls below MIN_COMPRESSION, and a pair that meets shares one source)."""
    src = src_pts.astype(np.float64)
    dst = dst_pts.astype(np.float64)
    ds, dd = np.sqrt(_sq_distances(src, src)), np.sqrt(_sq_distances(dst, dst))
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ds > 1e-6, 1.0 - dd / (MIN_COMPRESSION * ds), 0.0)
    w = np.tril(np.clip(w, 0.0, 1.0), -1)  # w[j, i]: how far point j (later) slides towards point i (earlier)
    out = src.copy()
    for j in np.flatnonzero(w.max(1) > 0):
        i = int(np.argmax(w[j]))
        out[j] = src[j] + w[j, i] * (out[i] - src[j])
    return out


def tps_map(src_pts: np.ndarray, dst_pts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps (map_x, map_y), each (size, size) float32: output pixel q samples the source at f(q),
    where f is the thin-plate spline taking each dst point to its src point (and the border to itself)."""
    return tps_maps([src_pts], dst_pts, size)[0]


def tps_maps(sources: list[np.ndarray], dst_pts: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``tps_map`` for several sources onto one driving shape (a photo and its lip copies): the spline's system
    depends on the driving points only, so it is solved once for all of them."""
    return [upsample(g, size) for g in tps_grids(sources, dst_pts, size)]


def upsample(
    mapped: np.ndarray, size: int, rows: slice = slice(None), cols: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """The backward maps (map_x, map_y) from a mapped evaluation grid, at every pixel of ``rows`` x ``cols``.

    Computed in float64 and rounded to float32: a float32 product's last bits depend on how many threads the BLAS
    splits it over (OpenBLAS 0.3.31: 40,581 of 131,072 values of a 256² map differ between 1 and 2 threads, none
    in float64 rounded), and `parla stream` runs its BLAS on one thread while a library caller's runs on all
    cores: the same frames need the same maps (tests/test_engine.py). 0.34 ms instead of 0.15 for a 256² map."""
    up = _upsampler(size)
    g = mapped.astype(np.float64).reshape(GRID, GRID, 2)
    x, y = (up[rows] @ g[..., k] @ up[cols].T for k in (0, 1))
    return x.astype(np.float32), y.astype(np.float32)


def tps_grid(src_pts: np.ndarray, dst_pts: np.ndarray, size: int) -> np.ndarray:
    """The spline on the GRID x GRID evaluation grid, well-posed for any driving shape: pairs squeezed together
    share their source (``reconcile``), and a map that still folds anywhere (its Jacobian below MIN_JACOBIAN) is
    solved again, smoother, until it does not (the guard: a degenerate warp never reaches the picture)."""
    return tps_grids([src_pts], dst_pts, size)[0]


def tps_grids(sources: list[np.ndarray], dst_pts: np.ndarray, size: int) -> list[np.ndarray]:
    """``tps_grid`` for each source, sharing the driving shape's kernels; each source gets the least smoothing
    under which its own map does not fold."""
    dst = dst_pts.astype(np.float64)
    srcs = [reconcile(s, dst) for s in sources]
    spline = _Spline(dst, size)
    out: list[np.ndarray | None] = [None] * len(srcs)
    todo = list(range(len(srcs)))
    for reg in REGULARISATIONS:
        for i, mapped in zip(todo, spline.grids([srcs[i] for i in todo], reg), strict=True):
            if jacobian_min(mapped, size) >= MIN_JACOBIAN or reg == REGULARISATIONS[-1]:
                out[i] = mapped
        todo = [i for i in todo if out[i] is None]
        if not todo:
            break
    return [m for m in out if m is not None]


class _Spline:
    """The thin-plate spline through the driving points (and the border anchors) evaluated on the GRID x GRID
    grid: its kernels depend on the driving shape only, the coefficients on the sources and the smoothing."""

    def __init__(self, dst: np.ndarray, size: int) -> None:
        self.size, self.scale = size, size / 256.0  # solved in a fixed frame: the smoothing means the same at any size
        anchors = _anchors(size)
        self.anchors = anchors / self.scale
        ctrl = np.concatenate([dst, anchors]) / self.scale
        n = self.n = len(ctrl)
        self.a = np.zeros((n + 3, n + 3))
        self.a[:n, :n] = _kernel(_sq_distances(ctrl, ctrl))
        p = np.concatenate([np.ones((n, 1)), ctrl], 1)
        self.a[:n, n:], self.a[n:, :n] = p, p.T
        g = _grid(size) / self.scale  # the anchors' kernels and the affine columns are computed once per size
        self.k = np.concatenate([_kernel(_sq_distances(g, dst / self.scale)), _grid_tail(size)], 1)

    def grids(self, srcs: list[np.ndarray], reg: float) -> list[np.ndarray]:
        """(GRID * GRID, 2) per source: where the spline sends each point of the evaluation grid."""
        n = self.n
        a = self.a.copy()
        a[np.arange(n), np.arange(n)] += reg
        b = np.zeros((n + 3, 2 * len(srcs)))
        for j, src in enumerate(srcs):
            b[:n, 2 * j : 2 * j + 2] = np.concatenate([src / self.scale, self.anchors])
        mapped = self.k @ np.linalg.solve(a, b) * self.scale
        return [mapped[:, 2 * j : 2 * j + 2] for j in range(len(srcs))]


def jacobian_min(mapped: np.ndarray, size: int) -> float:
    """The smallest area ratio (Jacobian determinant) of a mapped evaluation grid: < 0 where the map folds."""
    m = mapped.reshape(GRID, GRID, 2)
    dx, dy = np.diff(m, axis=1)[:-1], np.diff(m, axis=0)[:, :-1]
    step = (size - 1) / (GRID - 1)
    return float((dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]).min() / step**2)


def warp(image: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Move the face in ``image`` (square crop) so that its landmarks ``src_pts`` land on ``dst_pts``."""
    mx, my = tps_map(src_pts.astype(np.float64), dst_pts.astype(np.float64), image.shape[0])
    return remap(image, mx, my)


def remap(image: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    cv2 = require("cv2", "core")
    return cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def condition_maps(lms: np.ndarray, size: int, crop_size: int = 256) -> np.ndarray:
    """(N_COND, size, size) float32 in [0, 1] from driving landmarks given in crop pixels:
    filled inner mouth, filled eyes, and the 68-point outline drawn as lines."""
    cv2 = require("cv2", "core")
    pts = np.round(lms * (size / crop_size) * 4).astype(np.int32)  # 2 fractional bits for sub-pixel drawing
    maps = np.zeros((N_COND, size, size), np.uint8)
    cv2.fillPoly(maps[0], [pts[60:68]], 255, cv2.LINE_AA, shift=2)
    cv2.fillPoly(maps[1], [pts[36:42], pts[42:48]], 255, cv2.LINE_AA, shift=2)
    for a, b, closed in (
        (0, 17, False),
        (17, 22, False),
        (22, 27, False),
        (27, 31, False),
        (31, 36, False),
        (36, 42, True),
        (42, 48, True),
        (48, 60, True),
        (60, 68, True),
    ):
        cv2.polylines(maps[2], [pts[a:b]], closed, 255, 1, cv2.LINE_AA, shift=2)
    return maps.astype(np.float32) / 255.0


def downsize(image: np.ndarray, res: int) -> np.ndarray:
    """A crop at the refiner's resolution (area filter: no aliasing)."""
    cv2 = require("cv2", "core")
    return cv2.resize(image, (res, res), interpolation=cv2.INTER_AREA)


def warp_inputs(
    crop: np.ndarray, landmarks: np.ndarray, driving: np.ndarray, res: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The host warp stage of one frame, shared by the renderer and the training batches: the crop warped onto
    the driving landmarks at full resolution, the same at the refiner's ``res``, the landmark maps, and the
    backward map itself (crop coordinates) for compositing at the photo's resolution."""
    mx, my = tps_map(landmarks.astype(np.float64), driving.astype(np.float64), crop.shape[0])
    w = remap(crop, mx, my)
    return w, downsize(w, res), condition_maps(driving, res, crop.shape[0]), (mx, my)
