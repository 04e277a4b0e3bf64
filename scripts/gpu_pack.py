"""Pack a prepared dataset small enough to travel to a lent GPU machine (64 MiB), and unpack it there.

The teacher trainer reads only the 256² crops and the landmarks. `pack` stores each clip's crops as an H.264
video (CRF given, yuv444p) plus its landmarks; `unpack` decodes them back to the `.crops.npy` + `.npz` layout
(OpenCV only, which the GPU image has). The crops are thus re-encoded once: a mild, recorded approximation.

    python scripts/gpu_pack.py pack runs/data gpu_pack --crf 18
    python scripts/gpu_pack.py unpack gpu_pack runs/data
    python scripts/gpu_pack.py seed parla/assets/default gpu_teacher   # a teacher run folder from a model folder

`seed` writes the run folder a resumed `parla train teacher` reads (config.json, state.json at the model's teacher
step, refiner.safetensors) from a model folder's teacher. It has no discriminator or optimiser state: the resume
starts both afresh (the critic trains alone for a while first, parla.training.checkpoint.D_WARMUP).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np


def pack(src: Path, dst: Path, crf: int) -> None:
    import av

    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "basis.npz", dst / "basis.npz")
    for meta in sorted((src / "clips").glob("*.npz")):
        crops = np.load(meta.with_name(meta.stem + ".crops.npy"), mmap_mode="r")
        with np.load(meta) as z:
            np.savez_compressed(dst / f"{meta.stem}.npz", landmarks=z["landmarks"].astype(np.float32), valid=z["valid"])
        with av.open(str(dst / f"{meta.stem}.mp4"), "w") as out:
            s = out.add_stream("libx264", rate=25)
            s.width = s.height = crops.shape[1]
            s.pix_fmt = "yuv444p"
            s.options = {"crf": str(crf), "preset": "slow"}
            for f in crops:
                for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)


def unpack(src: Path, dst: Path) -> None:
    import cv2

    (dst / "clips").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "basis.npz", dst / "basis.npz")
    for meta in sorted(p for p in src.glob("*.npz") if p.name != "basis.npz"):
        cap, frames = cv2.VideoCapture(str(meta.with_suffix(".mp4"))), []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
        with np.load(meta) as z:
            n = len(z["landmarks"])
            np.savez(dst / "clips" / meta.name, landmarks=z["landmarks"], valid=z["valid"])
        if len(frames) != n:
            raise SystemExit(f"{meta.stem}: {len(frames)} frames decoded, {n} expected")
        np.save(dst / "clips" / f"{meta.stem}.crops.npy", np.stack(frames))
    print("unpacked", len(list((dst / "clips").glob("*.npz"))), "clips")


def seed(model: Path, run: Path) -> None:
    import json

    from parla.files import sha256

    cfg = json.loads((model / "config.json").read_text())
    run.mkdir(parents=True, exist_ok=True)
    shutil.copy(model / "refiner.safetensors", run / "refiner.safetensors")
    if sha256(run / "refiner.safetensors") != cfg["sha256"]["refiner.safetensors"]:
        raise SystemExit(f"{model}: refiner.safetensors does not match its config's sha256")
    t = cfg["training"]
    config = {
        "kind": "teacher",
        "refiner": cfg["refiner"],
        "discriminator": {"cond": cfg["refiner"]["cond"]},
        "train": t["teacher_train"],
        "data": t.get("teacher_data"),
        "device": "cuda",
        "world": 1,
        "seeded_from": cfg["version"],
    }
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {"step": t["teacher_steps"], "sha256": {"refiner.safetensors": cfg["sha256"]["refiner.safetensors"]}}
    (run / "state.json").write_text(json.dumps({**state, **config}, indent=2) + "\n")
    print("seeded", run, "at step", t["teacher_steps"], "from", cfg["version"])


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    crf = int(sys.argv[sys.argv.index("--crf") + 1]) if "--crf" in sys.argv else 18
    {
        "pack": lambda: pack(Path(a), Path(b), crf),
        "unpack": lambda: unpack(Path(a), Path(b)),
        "seed": lambda: seed(Path(a), Path(b)),
    }[cmd]()
