"""Where does a portrait's upper-face detail go? Two checks per portrait (issue 13):
- the still photo written 25 times through the product's H.264 writer, the patch cut at the landmarks detected on
  each decoded frame (what `parla eval gen` does): the encoder's and the measurement's share;
- frames rendered in memory by the default engine (x86-cpu: OpenVINO INT8 student) on s01, the patch cut at the
  driving landmarks (no encoder, no detection): the renderer's share.

    python benchmarks/detail_check.py ../shared/data/eval/portraits/p05_liveportrait_s2_bw.jpg ...
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

SPEECH = Path(__file__).resolve().parents[1].parent / "shared/data/eval/speech/s01_en_sadtalker_RD_Radio31_000.wav"


def still_reencode(path: str) -> list[float]:
    from parla.face.detect import detect_faces, select_face
    from parla.media.image import load_image
    from parla.media.video import VideoWriter, iter_frames
    from parla.metrics.frames import Reference

    image = load_image(path)
    ref = Reference(image, select_face(detect_faces(image), None, name=path).landmarks)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "still.mp4"
        with VideoWriter(out, 25.0, audio=np.zeros(16000, np.float32)) as w:
            for _ in range(25):
                w.write(image)
        vals = []
        for i, (_, frame) in enumerate(iter_frames(out)):
            found = detect_faces(frame) if i % 5 == 0 else []
            if found:
                vals.append(ref.compare(frame, select_face(found, None, name="frame").landmarks)[0])
    return vals


def rendered(path: str) -> list[float]:
    from parla.audio.io import load_audio
    from parla.edge.avatar import Avatar
    from parla.metrics.frames import Reference

    with Avatar.from_image(path) as av:
        p = av.portrait
        ref = Reference(p.image, p.alignment.to_image(p.landmarks))
        motion, r, vals = av.new_motion(), av.new_renderer(stages=False), []
        for i, fm in enumerate(motion.push(load_audio(SPEECH))):
            if i % 3 == 0:
                drv = r.basis.drive(p.landmarks, fm.coeffs, fm.pose, fm.blink, fm.mouth_close, fm.mouth_rest)
                vals.append(ref.compare(r.render(fm), p.alignment.to_image(drv))[0])
    return vals


def main() -> None:
    for path in sys.argv[1:]:
        s, r = still_reencode(path), rendered(path)
        print(f"{Path(path).name}: still re-encode median {np.median(s):.3f}; rendered in memory median "
              f"{np.median(r):.3f} (lowest {np.min(r):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
