"""Experiment (not part of the product): per-mel-frame phone labels from PocketSphinx's speaker-independent en-us
acoustic model (phone-loop decoding, no words), as extra inputs for the audio->lips net in benchmarks/motion_cv.py.

The question it answers: does an acoustic model trained on many speakers carry lip information that our net,
trained on 52 clips, cannot learn by itself? Needs `pip install pocketsphinx` (ships its en-us model).

    python benchmarks/phone_features.py VIDEOS_DIR --data runs/data -o runs/phones
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

# The 39 CMU phones plus silence; noise/filler labels (+NSN+, +SPN+, ...) count as silence.
PHONES = (
    "SIL AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()


def decoder():
    from pocketsphinx import Decoder, get_model_path

    m = Path(get_model_path()) / "en-us"
    return Decoder(
        hmm=str(m / "en-us"), allphone=str(m / "en-us-phone.lm.bin"), lw=2.0, beam=1e-20, pbeam=1e-20, loglevel="FATAL"
    )


def phone_track(dec, audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, len(PHONES)) one-hot phone per 10-ms frame (the mel frame rate)."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    out = np.zeros((n_frames, len(PHONES)), np.float32)
    out[:, 0] = 1.0
    for seg in dec.seg():
        k = PHONES.index(seg.word) if seg.word in PHONES else 0
        a, b = max(seg.start_frame, 0), min(seg.end_frame + 1, n_frames)
        if b > a:
            out[a:b] = 0.0
            out[a:b, k] = 1.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos")
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("-o", "--out", default="runs/phones")
    args = ap.parse_args()

    from parla.face.tracks import clip_audio, list_videos
    from parla.training.basis import load_clip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dec = decoder()
    for video in list_videos(args.videos):
        clip = Path(args.data, "clips", f"{video.stem}.npz")
        if not clip.is_file():
            continue
        c = load_clip(clip)
        if not bool(c["has_audio"]):
            continue
        audio, _ = clip_audio(video, None)
        np.save(out / f"{video.stem}.npy", phone_track(dec, audio, len(c["mel"])))
        print(video.name, os.path.getsize(out / f"{video.stem}.npy"), flush=True)


if __name__ == "__main__":
    main()
