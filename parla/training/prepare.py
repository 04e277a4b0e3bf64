"""`parla prepare`: talking-face videos -> a training dataset (aligned crops, landmarks, pose, blink, mel).

Layout of DATASET_DIR:
  clips/<stem>.crops.npy   (T, 256, 256, 3) uint8 aligned crops, memory-mappable
  clips/<stem>.npz         landmarks in crop pixels, validity, pose, eye aspect ratio, log-mel, 16 kHz audio, fps
  basis.npz                the expression PCA basis (fitted on all prepared clips)
  report.json              per clip: "ok" or the reason it was skipped

Crops use a per-clip alignment smoothed over ~2 s, so that head motion stays inside the crop as it will at
inference (the portrait's alignment is fixed while the head moves), while slow drift is followed.
A clip already in clips/ is not redone (resumable); every file is written under a temporary name first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from parla.audio.mel import log_mel
from parla.errors import InputFileError, ParlaError
from parla.face.align import CROP_SIZE, Alignment, crop_face, face_quad
from parla.face.landmarks import eye_aspect_ratio
from parla.face.signals import fill_gaps, head_pose
from parla.face.tracks import clip_audio, list_videos, track_video
from parla.files import atomic_output, write_text_atomic
from parla.media.video import iter_frames
from parla.progress import progress

ALIGN_SMOOTH_S = 2.0  # s: moving-average window of the per-clip crop alignment
MIN_FACE_FRACTION = 0.5  # clips with a face in fewer frames are skipped
MIN_FRAMES = 12
SPEECH_RMS = 10 ** (-50 / 20)  # below this the audio counts as absent (motion training skips the clip)


def _smoothed_alignments(lms: np.ndarray, valid: np.ndarray, fps: float) -> list[Alignment]:
    import cv2

    quads = np.full((len(lms), 4, 2), np.nan)
    for i in np.flatnonzero(valid):
        quads[i] = face_quad(lms[i])
    flat = np.stack([fill_gaps(quads[:, k // 2, k % 2], max_gap=len(lms)) for k in range(8)], axis=1)
    flat = np.where(np.isnan(flat), np.nanmean(flat, axis=0), flat)
    win = max(1, int(round(ALIGN_SMOOTH_S * fps)) | 1)
    padded = np.pad(flat, ((win // 2, win // 2), (0, 0)), mode="edge")
    kernel = np.ones(win) / win
    smooth = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(8)], axis=1)
    dst = np.array([[0, 0], [0, CROP_SIZE], [CROP_SIZE, CROP_SIZE]], np.float32)
    out = []
    for q in smooth.reshape(-1, 4, 2):
        m = cv2.getAffineTransform(q[:3].astype(np.float32), dst).astype(np.float64)
        out.append(Alignment(m, cv2.invertAffineTransform(m).astype(np.float64)))
    return out


def prepare_clip(video: Path, out_dir: Path, name: str | None = None) -> str:
    """Prepare one clip (stored as ``name``, default the video's stem); returns "ok" or the reason for skipping."""
    name = name or video.stem
    track = track_video(video)
    valid = track.valid
    if track.n_frames < MIN_FRAMES or valid.mean() < MIN_FACE_FRACTION:
        return f"face found in only {valid.sum()} of {track.n_frames} frames"
    try:
        audio, _ = clip_audio(video, None)
    except ParlaError:
        audio = None
    has_audio = audio is not None and float(np.sqrt(np.mean(audio**2))) >= SPEECH_RMS
    aligns = _smoothed_alignments(track.landmarks, valid, track.fps)
    crops_path = out_dir / f"{name}.crops.npy"
    with atomic_output(crops_path) as tmp:
        crops = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(track.n_frames, CROP_SIZE, CROP_SIZE, 3)
        )
        for i, (_, frame) in enumerate(iter_frames(video)):
            if i >= track.n_frames:
                break
            crops[i] = crop_face(frame, aligns[i])
        crops.flush()
        del crops
    lm_crop = np.stack([a.to_crop(lm) for a, lm in zip(aligns, track.landmarks, strict=True)]).astype(np.float32)
    meta = {
        "landmarks": lm_crop,
        "valid": valid,
        "fps": np.float32(track.fps),
        "ear": eye_aspect_ratio(track.landmarks).astype(np.float32),
        "pose": head_pose(track.landmarks, track.width, track.height).astype(np.float32),
        "matrices": np.stack([a.matrix for a in aligns]).astype(np.float32),
        "has_audio": np.bool_(has_audio),
        "mel": log_mel(audio) if has_audio else np.zeros((0, 80), np.float32),
        # the speech itself (16 kHz, 16-bit): front-ends that need the waveform (the phoneme encoder) read it
        "audio": (np.clip(audio, -1, 1) * 32767).astype(np.int16) if has_audio else np.zeros(0, np.int16),
    }
    with atomic_output(out_dir / f"{name}.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **meta)
    return "ok" if has_audio else "ok (no speech: refiner training only)"


def video_sources(specs: list[str]) -> list[tuple[Path, str]]:
    """``DIR`` or ``PREFIX=DIR`` arguments -> (video, clip name) pairs; a prefix names a corpus whose file names
    carry none (``lrwar=../shared/data/train/lrw_ar/videos`` -> clips lrwar_00139, ...). Names must be unique."""
    out: list[tuple[Path, str]] = []
    for spec in specs:
        prefix, sep, folder = spec.partition("=")
        if not sep:
            prefix, folder = "", spec
        elif not prefix.isidentifier() or "_" in prefix:
            raise InputFileError(f"{spec}: a corpus prefix is letters and digits only (lrwar=DIR)")
        out += [(v, f"{prefix}_{v.stem}" if prefix else v.stem) for v in list_videos(folder)]
    seen: dict[str, Path] = {}
    for v, name in out:
        if name in seen:
            raise InputFileError(f"{v} and {seen[name]} would both be clip {name!r}; give one folder a PREFIX=")
        seen[name] = v
    return out


def prepare_dataset(
    videos_dirs: str | os.PathLike | list[str], out_dir: str | os.PathLike, *, show: bool = True, persons: bool = True
) -> dict:
    """Prepare every clip of the video folders (resumable; one clip in memory at a time), fit the expression
    basis and group the clips by person (``persons.json``). Returns the per-clip report."""
    from parla.training.basis import fit_basis
    from parla.training.persons import person_groups

    out = Path(out_dir)
    clips_dir = out / "clips"
    specs = [str(videos_dirs)] if isinstance(videos_dirs, (str, os.PathLike)) else [str(v) for v in videos_dirs]
    videos = video_sources(specs)  # before any folder is made: a wrong input leaves nothing behind
    try:
        clips_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputFileError(f"{out}: cannot create the dataset folder: {e}") from e
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    with progress(len(videos), "preparing clips", enabled=show, unit="clip") as bar:
        for v, name in videos:
            key = name + v.suffix
            done = (clips_dir / f"{name}.npz").is_file() and (clips_dir / f"{name}.crops.npy").is_file()
            if not done and not str(report.get(key, "")).startswith("skipped"):
                try:
                    status = prepare_clip(v, clips_dir, name)
                except ParlaError as e:
                    status = f"error: {e}"
                report[key] = status if status.startswith("ok") else f"skipped: {status}"
                write_text_atomic(report_path, json.dumps(report, indent=2) + "\n")
            bar.update(1)
    basis = fit_basis(clips_dir)
    basis.save(out / "basis.npz")
    if persons:
        person_groups(out, show=show)
    return report


def dataset_summary(out_dir: str | os.PathLike) -> str:
    """One line: people, groups and minutes (with speech) of a prepared dataset."""
    out = Path(out_dir)
    persons = json.loads((out / "persons.json").read_text())
    total = speech = 0.0
    for meta in (out / "clips").glob("*.npz"):
        with np.load(meta) as z:
            secs = len(z["valid"]) / float(z["fps"])
            total += secs
            speech += secs if bool(z["has_audio"]) else 0.0
    return (
        f"{persons['people']} people (face clusters) in {persons['groups']} held-out groups; "
        f"{total / 60:.1f} minutes of video, {speech / 60:.1f} with speech"
    )
