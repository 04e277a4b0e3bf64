"""`parla eval`: run the talking-face metrics over clips and write a JSON report with stable keys."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from parla.audio.mel import log_mel
from parla.face import landmarks as L
from parla.face.tracks import clip_audio, list_videos, track_video
from parla.media.video import VideoWriter, iter_frames, probe_video
from parla.metrics import av, frames

CLIP_KEYS = (
    "file",
    "sync_offset_frames",
    "sync_confidence",
    "sync_offset_frames_ph",  # the same with the phoneme probe (docs/metrics.md; None without it)
    "sync_confidence_ph",
    "mouth_activity_ratio",
    "blink_per_min",
    "head_motion",
    "jitter",
    "identity_distance",
    "spikes",
    "detail_median",
    "detail_min",
    "delta_e_median",
    "mouth_chroma_excess_p95",
)
N_IDENTITY_FRAMES = 16  # frames sampled per clip for the identity distance


@functools.lru_cache(maxsize=1)
def _probe():
    from parla.metrics.sync_probe import SyncProbe

    return SyncProbe.load()


@functools.lru_cache(maxsize=1)
def _phoneme_probe():
    """The phoneme-feature probe, or None where it or the phoneme encoder is not installed."""
    from parla.errors import ParlaError
    from parla.metrics.sync_probe import ASSET_PHONEMES, SyncProbe, _encoder

    try:
        probe = SyncProbe.load(asset=ASSET_PHONEMES)
        _encoder()
    except (ParlaError, ImportError):
        return None
    return probe


def _sync(clip: dict[str, Any], mouth: np.ndarray, samples: np.ndarray, mel: np.ndarray | None) -> None:
    """Both probes' lip sync of a mouth track against speech, into ``clip``."""
    fps, n = clip["fps"], len(mouth)
    predicted = _probe().predict(samples, fps, n, mel=mel)
    clip["sync_offset_frames"], clip["sync_confidence"], clip["sync_correlation"] = av.lip_sync(mouth, predicted, fps)
    ph = _phoneme_probe()
    if ph is not None:
        predicted = ph.predict(samples, fps, n, mel=mel)
        clip["sync_offset_frames_ph"], clip["sync_confidence_ph"], _ = av.lip_sync(mouth, predicted, fps)


def portrait_embedding(portrait: str | os.PathLike, face_index: int | None = None, *, with_reference: bool = False):
    """The portrait's identity embedding (and, ``with_reference``, its upper-face detail reference)."""
    from parla.face.detect import detect_faces, face_embedding, select_face
    from parla.media.image import load_image

    image = load_image(portrait)
    face = select_face(detect_faces(image), face_index, name=str(portrait))
    emb = face_embedding(image, face.landmarks)
    return (emb, frames.Reference(image, face.landmarks)) if with_reference else emb


def evaluate_clip(
    video: str | os.PathLike,
    *,
    audio: str | os.PathLike | None = None,
    portrait_emb: np.ndarray | None = None,
    reference: frames.Reference | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """All metrics of one clip; metrics that do not apply (no audio, no portrait) are None."""
    return _measure(Path(video), audio, portrait_emb, progress, reference)[0]


def _measure(
    video: Path,
    audio: str | os.PathLike | None,
    portrait_emb: np.ndarray | None,
    progress: bool,
    reference: frames.Reference | None | bool = None,
    sheet: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """(metrics, mouth-opening track, 16 kHz audio or None). ``reference``: the portrait's detail patch, or True
    to take the clip's own first frame (real clips: the ceiling)."""
    track = track_video(video, n_embeddings=N_IDENTITY_FRAMES if portrait_emb is not None else 0, progress=progress)
    samples, audio_source = clip_audio(video, Path(audio) if audio else None)
    lms = track.landmarks
    mouth = L.mouth_opening(lms)
    clip: dict[str, Any] = dict.fromkeys(CLIP_KEYS)
    clip.update(
        file=video.name,
        n_frames=track.n_frames,
        fps=track.fps,
        face_fraction=float(track.valid.mean()) if track.n_frames else 0.0,
        audio_source=audio_source,
        sync_correlation=None,
        mouth_open_voiced=None,
        mouth_open_silent=None,
    )
    if samples is not None:
        mel = log_mel(samples)  # shared by the envelope and the probe
        env = av.envelope_from_mel(mel, track.fps, track.n_frames)
        _sync(clip, mouth, samples, mel)
        act = av.mouth_activity(mouth, env)
        clip.update(
            mouth_activity_ratio=act["ratio"],
            mouth_open_voiced=act["open_voiced"],
            mouth_open_silent=act["open_silent"],
        )
    clip["blink_per_min"] = av.blink_rate(L.eye_aspect_ratio(lms), track.fps)
    clip["head_motion"] = av.head_motion(lms, track.fps, track.width, track.height)
    clip["jitter"] = av.landmark_jitter(lms)
    if portrait_emb is not None:
        clip["identity_distance"] = av.identity_distance(portrait_emb, track.embeddings)
    if reference is True:
        reference = _first_frame_reference(video, lms)
    clip.update(frames.frame_metrics(video, lms, reference or None))
    if sheet is not None:
        frames.contact_sheet(video, lms, sheet, spike_frames=clip["spike_frames"])
    return clip, mouth, samples


def _first_frame_reference(video: Path, lms: np.ndarray) -> frames.Reference | None:
    if not len(lms) or np.isnan(lms[0, 0, 0]):
        return None
    _, first = next(iter(iter_frames(video)))
    return frames.Reference(first, lms[0])


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return float(np.median(vals)) if vals else None


def summarize(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric metric over the clips (per key for the head-motion dict)."""
    out: dict[str, Any] = {"n_clips": len(clips)}
    for key in CLIP_KEYS[1:] + ("sync_correlation", "mouth_open_voiced", "mouth_open_silent"):
        if key == "head_motion":
            sub = [c[key] or {} for c in clips]
            names = sorted({k for s in sub for k in s})
            out[key] = {k: _median([s.get(k) for s in sub]) for k in names}
        else:
            out[key] = _median([c.get(key) for c in clips])
    offsets = [c["sync_offset_frames"] for c in clips if c.get("sync_offset_frames") is not None]
    out["abs_sync_offset_frames"] = _median([abs(o) for o in offsets])
    spikes = [c["spikes"] for c in clips if c.get("spikes") is not None]
    out["spikes_total"] = int(sum(spikes)) if spikes else None
    out["clips_with_spikes"] = sum(1 for s in spikes if s) if spikes else None
    details = [c["detail_median"] for c in clips if c.get("detail_median") is not None]
    out["detail_clip_min"] = float(min(details)) if details else None
    return out


def make_still_video(video: Path, out: Path, audio: np.ndarray) -> Path:
    """The control clip: the first frame of ``video`` held for the whole of its audio, as an H.264 mp4."""
    info = probe_video(video)
    _, first = next(iter(iter_frames(video)))
    n = max(1, int(round(len(audio) / 16_000 * info.fps)))
    with VideoWriter(out, info.fps, audio=audio) as w:
        for _ in range(n):
            w.write(first)
    return out


def evaluate_real(folder: str | os.PathLike, *, control: bool = False, progress: bool = False) -> dict[str, Any]:
    """Metrics of every real clip in ``folder``; with ``control``, also of two controls that must not sync:
    the clip's first frame held still over its real audio, and the clip with the next clip's audio."""
    from parla.progress import progress as bar

    measured = []
    videos = list_videos(folder)
    with bar(len(videos), "clips", enabled=progress, unit="clip") as b:
        for v in videos:
            measured.append(_measure(v, None, None, progress, reference=True))
            b.update(1)
    clips = [m[0] for m in measured]
    report: dict[str, Any] = {"mode": "real", "folder": str(folder), "clips": clips, "summary": summarize(clips)}
    if control:
        still = [_still_control(v, samples, progress) for v, (_, _, samples) in zip(videos, measured, strict=True)]
        swapped = _swapped_audio_control(measured)
        report["control"] = {
            "still": {
                "kind": "first frame held still + the clip's real audio",
                "clips": still,
                "summary": summarize(still),
            },
            "swapped_audio": {
                "kind": "real video + the next clip's audio",
                "clips": swapped,
                "summary": summarize(swapped),
            },
        }
    return report


def _swapped_audio_control(measured: list) -> list[dict[str, Any]]:
    with_audio = [m for m in measured if m[2] is not None]
    out = []
    for i, (clip, mouth, _) in enumerate(with_audio):
        other_clip, _, other = with_audio[(i + 1) % len(with_audio)]
        if other_clip is clip:
            continue
        row = {**dict.fromkeys(CLIP_KEYS), "file": f"{clip['file']} + audio of {other_clip['file']}"}
        row["fps"] = clip["fps"]
        _sync(row, mouth, other, None)
        out.append(row)
    return out


def _still_control(video: Path, samples: np.ndarray | None, progress: bool) -> dict[str, Any]:
    if samples is None:
        return {**dict.fromkeys(CLIP_KEYS), "file": f"{video.name} (still control, no audio)"}
    with tempfile.TemporaryDirectory() as tmp:
        still = make_still_video(video, Path(tmp) / f"{video.stem}_still.mp4", samples)
        clip = evaluate_clip(still, progress=progress)
    clip["file"] = f"{video.name} (still control)"
    return clip


def evaluate_generated(
    video: str | os.PathLike,
    *,
    portrait: str | os.PathLike,
    audio: str | os.PathLike | None = None,
    face_index: int | None = None,
    progress: bool = False,
    sheet: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Metrics of a generated video against the portrait it came from; ``sheet``: also write a contact sheet."""
    emb, ref = portrait_embedding(portrait, face_index, with_reference=True)
    clip = _measure(Path(video), audio, emb, progress, ref, sheet)[0]
    return {"mode": "generated", "portrait": str(portrait), "clips": [clip], "summary": summarize([clip])}


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    from parla.files import write_text_atomic

    write_text_atomic(path, json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    """NaN and infinities become null, so the JSON stays standard."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj.item() if isinstance(obj, np.generic) else obj


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the main metrics per clip, with the medians last."""
    cols = [
        ("sync_offset_frames", "offset", "{:+d}"),
        ("sync_confidence", "sync conf", "{:.3f}"),
        ("sync_confidence_ph", "sync ph", "{:.3f}"),
        ("mouth_activity_ratio", "mouth v/s", "{:.2f}"),
        ("blink_per_min", "blink/min", "{:.1f}"),
        ("jitter", "jitter", "{:.4f}"),
        ("identity_distance", "id dist", "{:.3f}"),
        ("spikes", "spikes", "{:d}"),
        ("detail_median", "detail", "{:.2f}"),
        ("delta_e_median", "ΔE", "{:.2f}"),
        ("mouth_chroma_excess_p95", "mouth C+", "{:.1f}"),
    ]

    def cell(v, fmt: str) -> str:
        if v is None:
            return "-"
        return fmt.format(int(round(v))) if fmt.endswith("d}") else fmt.format(v)

    width = max([len(c["file"]) for c in report["clips"]] + [12])
    lines = [f"{'clip':<{width}}  " + "  ".join(f"{h:>9}" for _, h, _ in cols)]
    rows = [(c["file"], c) for c in report["clips"]] + [("median", report["summary"])]
    for name, c in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell(c.get(k), f):>9}" for k, _, f in cols))
    for kind, ctl in report.get("control", {}).items():
        s = ctl["summary"]
        conf, ratio = cell(s.get("sync_confidence"), "{:.3f}"), cell(s.get("mouth_activity_ratio"), "{:.2f}")
        ph = cell(s.get("sync_confidence_ph"), "{:.3f}")
        lines.append(f"control {kind}: median sync confidence {conf} (phoneme probe {ph}), mouth v/s {ratio}")
    return "\n".join(lines)
