"""`parla train motion`: the audio->expression network, and the head-motion and blink models, from a prepared
dataset. Writes RUN/config.json, RUN/motion.safetensors, RUN/basis.npz and a CSV log."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from parla.audio.mel import FRAMES_PER_SECOND
from parla.audio.phonemes import phoneme_track
from parla.audio.signals import envelope_from_mel, voiced_silent_masks
from parla.errors import ParlaError
from parla.face.expression import ExpressionBasis, similarity_fit
from parla.face.landmarks import mouth_opening
from parla.face.signals import blink_events, fill_gaps
from parla.files import atomic_output
from parla.models.head_blink import fit_ar2, fit_blinks
from parla.models.lips import LipEnsemble, LipNet, LipNetConfig, ensemble
from parla.training import checkpoint as ckpt
from parla.training.basis import clip_offsets, fit_rest, load_clip

# The streaming phoneme encoder's window (the runtime's default for live sources; docs/decisions.md)
STREAM_PAST_S, STREAM_FUTURE_S = 2.0, 0.3
CLOSED_IOD = 0.025  # inner-lip gap (in inter-ocular distances) at or under which the lips count as touching
N_MELS = 80  # spectrum channels of the net's input; any further channels (experiments) are not augmented
POSE_FPS = 25.0  # the head model runs at this rate; tracks are resampled to it


@dataclass(frozen=True)
class MotionTrainConfig:
    steps: int = 1000
    batch: int = 16
    window: int = 200  # mel frames (2 s) per training window
    lr: float = 5e-4
    w_vel: float = 1.0
    val_fraction: float = 0.1
    seed: int = 0
    log_every: int = 50
    gain_db: float = 6.0  # augmentation: random loudness change (the mel is in natural-log power units)
    noise: float = 0.3  # augmentation: a random offset per mel band (microphone/room colouring), normalised units
    warp: float = 0.0  # augmentation: random frequency warp of the mel bins by up to this fraction (VTLP; 0: off,
    # measured no better across sources at 0.12, docs/training.md)
    closure: bool = False  # the net also predicts whether the lips touch (a closure output)
    w_close: float = 0.5  # weight of that output's loss
    phonemes: str = ""  # the phoneme encoder's features as extra inputs: "" (log-mel only), "offline" (whole-clip
    # windows) or "stream:PAST:FUTURE" (as the streaming encoder computes them; seconds), see parla.audio.phonemes;
    # several joined by "+" (e.g. "offline+stream:2:0.3"): each training window draws one, so that one net serves
    # audio known ahead and live audio; validation uses the first
    members: int = 1  # nets trained from seeds seed, seed + 1000, ... and shipped as one averaging ensemble
    w_corr: float = 0.0  # weight of a scale-free loss: 1 - the correlation, per window, of the predicted with the
    # real mouth opening and width (linear read-outs of the coefficients); the L1 loss alone under-articulates
    phoneme_outputs: str = "hidden"  # which encoder outputs (parla.audio.phonemes.OUTPUTS, joined by "+")
    # How evenly the corpora (``parla.training.persons.corpus``) are drawn: 0, in proportion to their frames; 1, each
    # corpus as often as the others (the 5 minutes of the named sources beside 43 of news clips); between: the
    # frame weights raised to 1 - corpus_balance
    corpus_balance: float = 0.0
    w_read: float = 0.0  # weight of an L1 loss on those two read-outs, each scaled to unit spread over the training
    # clips (width 0.34 -> 0.28 source-held-out at 1.0; kept for the record, off by default)


@dataclass
class MotionClip:
    name: str
    mel: np.ndarray  # (M, 80)
    coeffs: np.ndarray  # (T, K) standardised expression coefficients, NaN where no face
    mel_index: np.ndarray  # (T,) the mel frame of each video frame
    fps: float
    closed: np.ndarray  # (T,) 1 where the real lips touch (inner-lip gap ≤ CLOSED_IOD), 0 apart, NaN: no face
    variants: list[np.ndarray] = field(default_factory=list)  # other inputs of the same audio (training draws one)


def _pose_track(clip: dict, fps: float) -> np.ndarray | None:
    """(T', 6) yaw, pitch, roll, tx, ty, log-scale relative to the clip's median, resampled to 25 fps."""
    valid, lms = clip["valid"], clip["landmarks"].astype(np.float64)
    if valid.mean() < 0.8:
        return None
    median = np.median(lms[valid], axis=0)
    track = np.full((len(lms), 6), np.nan)
    for i in np.flatnonzero(valid):
        m = similarity_fit(median, lms[i])
        scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
        track[i, 2] = math.degrees(math.atan2(m[1, 0], m[0, 0]))
        track[i, 3:5] = lms[i].mean(0) - median.mean(0)
        track[i, 5] = math.log(scale)
    track[:, :2] = clip["pose"][:, :2] - np.nanmedian(clip["pose"][:, :2], axis=0)
    track = np.stack([fill_gaps(track[:, k], max_gap=len(track)) for k in range(6)], 1)
    # 5-frame moving average: per-frame pose estimates from landmarks are noisy (solvePnP yaw/pitch especially).
    k = np.ones(5) / 5
    track = np.stack([np.convolve(np.pad(track[:, j], 2, mode="edge"), k, mode="valid") for j in range(6)], 1)
    idx = np.round(np.arange(0, len(track) / fps, 1 / POSE_FPS) * fps).astype(int)
    out = track[np.clip(idx, 0, len(track) - 1)]
    return None if np.isnan(out).any() else out


def phoneme_settings(spec: str, outputs: str = "hidden") -> dict:
    """What config.json records about the phoneme front-end a motion model was trained with."""
    from parla.audio import phonemes as ph

    return {
        "encoder": f"{ph.PACKAGE}=={ph.PACKAGE_VERSION}:{ph.ASSET}",
        "sha256": ph.SHA256,
        "output": "+".join(ph.OUTPUTS[n][0] for n in outputs.split("+")),
        **({} if outputs == "hidden" else {"outputs": outputs}),  # a folder without it reads the hidden state
        "train_features": spec.split("+"),
        "past_s": STREAM_PAST_S,
        "future_s": STREAM_FUTURE_S,
    }


def _cached_track(data_dir: Path, name: str, audio: np.ndarray, n_mel: int, spec: str, encoder) -> np.ndarray:
    folder = spec.replace(":", "_") + ("" if encoder.names == "hidden" else f"_{encoder.names}")
    path = data_dir / "phonemes" / folder / f"{name}.npy"
    if path.is_file():
        return np.load(path)
    track = phoneme_track(audio, n_mel, spec, encoder).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, track)
    return track


def build(
    data_dir: Path, basis: ExpressionBasis, phonemes: str = "", outputs: str = "hidden"
) -> tuple[list[MotionClip], dict]:
    """The clips with speech, and the fitted head, blink and mouth-rest models (``"rest"``: for the basis's meta,
    fitted on every face track). With ``phonemes`` (see MotionTrainConfig) each clip's input is its log-mel
    followed by the phoneme encoder's features (cached under DATA/phonemes/)."""
    encoder = None
    if phonemes:
        from parla.audio.phonemes import PhonemeEncoder

        encoder = PhonemeEncoder(outputs=outputs)
    clips, poses, voiced, intervals, tracks = [], [], [], [], []
    for path in sorted((data_dir / "clips").glob("*.npz")):
        c = load_clip(path)
        fps = float(c["fps"])
        tracks.append(c["landmarks"][c["valid"]])
        pose = _pose_track(c, fps)
        ear = np.where(c["valid"], c["ear"], np.nan)
        starts = blink_events(ear, fps)
        intervals += list(np.diff(starts) / fps)
        if not bool(c["has_audio"]):
            if pose is not None:
                poses.append(pose)
                voiced.append(np.zeros(len(pose)))
            continue
        env = envelope_from_mel(c["mel"], fps, len(c["valid"]))
        v, _ = voiced_silent_masks(env)
        if pose is not None:
            poses.append(pose)
            vi = np.round(np.arange(len(pose)) / POSE_FPS * fps).astype(int)
            voiced.append(v[np.clip(vi, 0, len(v) - 1)].astype(float))
        coeffs = np.full((len(c["valid"]), basis.n_components), np.nan, np.float32)
        _, offsets = clip_offsets(c["landmarks"][c["valid"]], basis.mean_shape.astype(np.float64))
        coeffs[c["valid"]] = basis.encode(offsets) / basis.stds
        mel_index = np.round(np.arange(len(coeffs)) / fps * FRAMES_PER_SECOND).astype(int)
        mels = [c["mel"]]
        if phonemes:
            if "audio" not in c:
                raise ParlaError(f"{path}: prepared without its audio; run `parla prepare` again for phoneme features")
            audio = c["audio"].astype(np.float32) / 32767
            n = len(c["mel"])
            mels = [
                np.concatenate([c["mel"], _cached_track(data_dir, path.stem, audio, n, spec, encoder)], 1)
                for spec in phonemes.split("+")
            ]
        closed = np.full(len(coeffs), np.nan, np.float32)
        closed[c["valid"]] = mouth_opening(c["landmarks"][c["valid"]].astype(np.float64)) <= CLOSED_IOD
        index = np.clip(mel_index, 0, len(mels[0]) - 1)
        clips.append(MotionClip(path.stem, mels[0], coeffs, index, fps, closed, mels))
    if not clips:
        raise ParlaError(f"{data_dir}: no prepared clip has speech; cannot train the motion model")
    stochastic = {
        "head": fit_ar2(poses, voiced).to_dict(),
        "blink": fit_blinks(intervals).to_dict(),
        "pose_clips": len(poses),
        "blink_intervals": len(intervals),
        "rest": fit_rest(tracks, basis),
    }
    return clips, stochastic


def _window(clip: MotionClip, mc: LipNetConfig, tc: MotionTrainConfig, rng: np.random.Generator):
    """A (ctx + window, 80) mel slice (left-padded with its first frame near the clip start), the positions of the
    video frames inside it, and their target coefficients."""
    ctx = mc.receptive_field
    start = int(rng.integers(0, max(1, len(clip.mel) - tc.window)))
    src = clip.variants[int(rng.integers(len(clip.variants)))] if len(clip.variants) > 1 else clip.mel
    padded = np.concatenate([np.repeat(src[:1], ctx, 0), src, np.repeat(src[-1:], tc.window, 0)])
    mel = padded[start : start + ctx + tc.window]  # padded index start + ctx is mel frame `start`
    frames = np.flatnonzero(
        (clip.mel_index >= start) & (clip.mel_index < start + tc.window) & ~np.isnan(clip.coeffs[:, 0])
    )
    return mel, clip.mel_index[frames] - start + ctx, clip.coeffs[frames], clip.closed[frames]


def _warp_bins(mels: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(B, T, F) log-mel with bin i read at i * factor (linear interpolation, clamped to the top bin)."""
    n = mels.shape[-1]
    out = np.empty_like(mels)
    for b, f in enumerate(factors):
        pos = np.clip(np.arange(n) * f, 0, n - 1)
        lo = np.minimum(pos.astype(int), n - 2)
        frac = pos - lo
        out[b] = mels[b][:, lo] * (1 - frac) + mels[b][:, lo + 1] * frac
    return out


def mouth_readouts(basis: ExpressionBasis) -> np.ndarray:
    """(K, 2): the mouth opening (vertical inner-lip gap) and width (corner distance), in inter-ocular distances,
    as linear functions of the standardised coefficients (the basis's offsets are canonical, its eyes fixed)."""
    from parla.face.landmarks import INNER_LIP_PAIRS, interocular

    offsets = basis.decode(np.diag(basis.stds).astype(np.float64))  # (K, 68, 2): one standard deviation each
    iod = float(interocular(basis.mean_shape.astype(np.float64)))
    opening = np.mean([offsets[:, d, 1] - offsets[:, u, 1] for u, d in INNER_LIP_PAIRS], axis=0)
    width = offsets[:, 54, 0] - offsets[:, 48, 0]
    return (np.stack([opening, width], 1) / iod).astype(np.float32)


def _pearson_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - correlation per column of (T, C) signals; columns whose target does not move are skipped."""
    p, t = pred - pred.mean(0), target - target.mean(0)
    ok = t.std(0) > 1e-6
    if not bool(ok.any()):
        return torch.zeros(())
    r = (p[:, ok] * t[:, ok]).sum(0) / (p[:, ok].norm(dim=0) * t[:, ok].norm(dim=0) + 1e-8)
    return (1 - r).mean()


def clip_weights(clips: list[MotionClip], tc: MotionTrainConfig) -> np.ndarray:
    """Sampling weights of the training clips: each in proportion to its frames (up to one window), the corpora
    evened out by ``tc.corpus_balance``."""
    from parla.training.persons import corpus

    weights = np.array([min(len(c.mel), tc.window) for c in clips], np.float64)
    if tc.corpus_balance > 0:
        names = np.array([corpus(c.name) for c in clips])
        for name in np.unique(names):  # a corpus's total weight: its frames ** (1 - corpus_balance)
            weights[names == name] *= weights[names == name].sum() ** -tc.corpus_balance
    return weights


def _loss(
    net: LipNet,
    clips: list[MotionClip],
    norm: tuple[np.ndarray, np.ndarray],
    mc: LipNetConfig,
    tc: MotionTrainConfig,
    rng: np.random.Generator,
    readouts: torch.Tensor | None = None,
) -> torch.Tensor:
    # clips drawn in proportion to their frames (up to one window): 2,112 news clips of 1.2 s would otherwise
    # outweigh the longer clips of the other corpora ten to one per second of speech
    weights = clip_weights(clips, tc)
    picks = rng.choice(len(clips), size=tc.batch, p=weights / weights.sum())
    windows = [_window(clips[i], mc, tc, rng) for i in picks]
    windows = [w for w in windows if len(w[1]) >= 3]
    gains = rng.uniform(-1, 1, (len(windows), 1, 1)) * tc.gain_db * np.log(10) / 10
    mels = np.stack([w[0] for w in windows]).astype(np.float64)
    mels[..., :N_MELS] += gains  # augmentations touch the spectrum only, not any extra input channels
    if tc.warp > 0:  # vocal tract length perturbation: stretch or squeeze the spectrum along the mel axis
        mels[..., :N_MELS] = _warp_bins(mels[..., :N_MELS], rng.uniform(1 - tc.warp, 1 + tc.warp, len(mels)))
    x = ((mels - norm[0]) / norm[1]).transpose(0, 2, 1)
    x[:, :N_MELS] += tc.noise * rng.standard_normal((len(windows), N_MELS, 1))
    out = net(torch.from_numpy(x.astype(np.float32)))
    total = torch.zeros(())
    n = mc.n_coeffs
    for k, (_, idx, target, closed) in enumerate(windows):
        pred = out[k, :, torch.from_numpy(idx)].T
        y = torch.from_numpy(target)
        total = total + F.l1_loss(pred[:, :n], y) + tc.w_vel * F.l1_loss(pred[1:, :n] - pred[:-1, :n], y[1:] - y[:-1])
        if readouts is not None and tc.w_corr > 0 and len(y) >= 8:
            total = total + tc.w_corr * _pearson_loss(pred[:, :n] @ readouts, y @ readouts)
        if readouts is not None and tc.w_read > 0:
            total = total + tc.w_read * F.l1_loss(pred[:, :n] @ readouts, y @ readouts)
        if mc.closure:
            total = total + tc.w_close * F.binary_cross_entropy_with_logits(pred[:, n], torch.from_numpy(closed))
    return total / max(len(windows), 1)


def _validate(net: LipNet | LipEnsemble, clips: list[MotionClip], norm, basis: ExpressionBasis) -> dict[str, float]:
    """L1 of the coefficients and the correlation of the predicted with the true mouth opening, per held-out clip."""
    from parla.face.landmarks import mouth_opening

    l1s, corrs = [], []
    with torch.no_grad():
        for c in clips:
            x = torch.from_numpy(((c.mel - norm[0]) / norm[1]).T[None].astype(np.float32))
            pred = net(x)[0].numpy().T[c.mel_index][:, : net.cfg.n_coeffs]
            ok = ~np.isnan(c.coeffs[:, 0])
            l1s.append(float(np.abs(pred[ok] - c.coeffs[ok]).mean()))
            shape = basis.mean_shape[None].astype(np.float64)
            mo_p = mouth_opening(shape + basis.decode(pred[ok] * basis.stds))
            mo_t = mouth_opening(shape + basis.decode(c.coeffs[ok] * basis.stds))
            if ok.sum() > 5 and mo_t.std() > 0:
                corrs.append(float(np.corrcoef(mo_p, mo_t)[0, 1]))
    return {"val_l1": float(np.mean(l1s)), "val_mouth_corr": float(np.median(corrs)) if corrs else float("nan")}


def articulation_gain(net: LipNet | LipEnsemble, clips: list[MotionClip], norm, basis: ExpressionBasis) -> float:
    """std(true mouth opening) / std(predicted) over the training clips.

    An L1-trained audio->lips regressor predicts the conditional median and under-articulates (measured: the
    predicted opening moved ~3.7x less than the real one). Scaling the prediction by this gain restores a real
    mouth's amplitude without changing its timing, which is what lip sync depends on.
    """
    from parla.face.landmarks import mouth_opening

    preds, trues = [], []
    net.eval()
    with torch.no_grad():
        for c in clips:
            x = torch.from_numpy(((c.mel - norm[0]) / norm[1]).T[None].astype(np.float32))
            ok = ~np.isnan(c.coeffs[:, 0])
            preds.append(net(x)[0].numpy().T[c.mel_index][ok][:, : net.cfg.n_coeffs])
            trues.append(c.coeffs[ok])
    shape = basis.mean_shape[None].astype(np.float64)
    p = mouth_opening(shape + basis.decode(np.concatenate(preds) * basis.stds))
    t = mouth_opening(shape + basis.decode(np.concatenate(trues) * basis.stds))
    return float(np.clip(t.std() / max(p.std(), 1e-6), 1.0, 5.0))


def fit(
    trn: list[MotionClip],
    val: list[MotionClip],
    basis: ExpressionBasis,
    tc: MotionTrainConfig,
    *,
    log: ckpt.CsvLog | None = None,
    show: bool = False,
    rng: np.random.Generator | None = None,
    mc: LipNetConfig | None = None,
) -> tuple[LipNet, tuple[np.ndarray, np.ndarray], dict[str, float]]:
    """Train the audio->lips net on ``trn``; keep the weights with the best mouth correlation on ``val``.
    Returns (net in eval mode, the mel normalisation, the held-out metrics of the kept weights)."""
    from parla.progress import progress

    rng = rng or np.random.default_rng(tc.seed)
    allmel = np.concatenate([c.mel for c in trn])
    norm = (allmel.mean(0).astype(np.float32), (allmel.std(0) + 1e-3).astype(np.float32))
    mc = mc or LipNetConfig(n_mels=trn[0].mel.shape[1], n_coeffs=basis.n_components, closure=tc.closure)
    torch.manual_seed(tc.seed)
    net = LipNet(mc)
    opt = torch.optim.AdamW(net.parameters(), lr=tc.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, tc.steps)
    readouts = None
    if tc.w_corr > 0 or tc.w_read > 0:
        r = mouth_readouts(basis)
        seen = np.concatenate([c.coeffs[~np.isnan(c.coeffs).any(1)] for c in trn]) @ r
        readouts = torch.from_numpy((r / (seen.std(0) + 1e-6)).astype(np.float32))  # unit spread: a scale-free L1
    t0 = time.time()
    metrics: dict[str, float] = {}
    best = (-np.inf, None, {})  # the weights with the best held-out mouth correlation are kept
    with progress(tc.steps, "motion", enabled=show, unit="step") as bar:
        for step in range(1, tc.steps + 1):
            net.train()
            loss = _loss(net, trn, norm, mc, tc, rng, readouts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            if step % tc.log_every == 0 or step == tc.steps:
                net.eval()
                metrics = _validate(net, val, norm, basis)
                if log is not None:
                    log.write(step, time.time() - t0, {"loss": float(loss.detach()), **metrics})
                if metrics["val_mouth_corr"] > best[0]:
                    best = (
                        metrics["val_mouth_corr"],
                        {k: v.clone() for k, v in net.state_dict().items()},
                        dict(metrics, step=step),
                    )
    if best[1] is not None:
        net.load_state_dict(best[1])
        metrics = best[2]
    return net.eval(), norm, metrics


def train_motion(
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    device: str = "cpu",
    train: MotionTrainConfig | None = None,
    show: bool = True,
) -> Path:
    tc = train or MotionTrainConfig()
    if tc.members < 1:
        raise ParlaError(f"parla train motion: --members must be at least 1, got {tc.members}")
    data, run = Path(data_dir), Path(run_dir)
    basis = ExpressionBasis.load(data / "basis.npz")
    clips, stochastic = build(data, basis, tc.phonemes, tc.phoneme_outputs)
    rng = np.random.default_rng(tc.seed)
    order = rng.permutation(len(clips))
    n_val = max(1, int(round(tc.val_fraction * len(clips))))
    val, trn = [clips[i] for i in order[:n_val]], [clips[i] for i in order[n_val:]]
    if not trn:  # a single clip (tests, tiny data sets): validate on what we train on
        trn = val
    run.mkdir(parents=True, exist_ok=True)
    basis.meta.update(stochastic.pop("rest"))  # the basis travels with the motion model, with its rest opening
    basis.save(run / "basis.npz")
    nets = []
    for j in range(tc.members):  # member j: its own seed, the same clips and normalisation
        member = replace(tc, seed=tc.seed + 1000 * j)
        log = ckpt.CsvLog(run / ("log.csv" if j == 0 else f"log_member{j}.csv"))
        net, norm, metrics = fit(
            trn, val, basis, member, log=log, show=show, rng=rng if j == 0 else np.random.default_rng(member.seed)
        )
        nets.append(net)
    net = ensemble(nets)
    if tc.members > 1:
        metrics = _validate(net, val, norm, basis)  # the ensemble's, on the same held-out clips
    mc = net.cfg
    gain = articulation_gain(net, trn, norm, basis)
    config = {
        "kind": "motion",
        "articulation_gain": gain,
        "motion": mc.to_dict(),
        "train": asdict(tc),
        "data": str(data),
        "mel_mean": norm[0].tolist(),
        "mel_std": norm[1].tolist(),
        **({"phonemes": phoneme_settings(tc.phonemes, tc.phoneme_outputs)} if tc.phonemes else {}),
        "val_clips": [c.name for c in val],
        "final": metrics,
        **stochastic,
    }
    digest = ckpt.save_weights(net, run / "motion.safetensors")
    ckpt.write_config(run, {**config, "sha256": {"motion.safetensors": digest}})
    ckpt.plot_losses(run / "log.csv", run / "loss.png")
    return run
