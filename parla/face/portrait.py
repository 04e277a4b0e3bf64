"""The photo, prepared once for animation: the full image, the aligned face crop, its landmarks, the crop at the
refiner's resolution, and the lip copies (the portrait with its lips moved) that the renderer warps from."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from parla.face.align import Alignment

SOFT_UPSCALE = 2.5  # crop px per photo px above which the face is enlarged enough to look soft


@dataclass
class Portrait:
    """The photo, prepared once: full image, aligned crop, its landmarks and the refiner-resolution crop."""

    image: np.ndarray  # RGB uint8, native resolution
    crop: np.ndarray  # (256, 256, 3) aligned face
    alignment: Alignment
    landmarks: np.ndarray  # (68, 2) in crop pixels
    source_lr: np.ndarray  # the crop at the refiner's resolution
    mouths: tuple[MouthCopy, ...] = ()  # lip copies: the gap cut (lips apart in the photo) or opened (lips together)

    @classmethod
    def from_landmarks(cls, image: np.ndarray, landmarks: np.ndarray, res: int) -> Portrait:
        from parla.face.align import align_face
        from parla.face.warp import downsize

        crop, alignment = align_face(image, landmarks)
        if alignment.scale > SOFT_UPSCALE:
            logging.getLogger("parla").warning(
                "warning: the face is small in this photo (%d px wide); it is enlarged %.1fx and will look soft: "
                "a photo with a face of 128 px or more gives a sharper video",
                round(float(np.ptp(landmarks[:, 0]))),
                alignment.scale,
            )
        lms = alignment.to_crop(landmarks).astype(np.float64)
        return cls(image, crop, alignment, lms, downsize(crop, res), MouthCopy.all(image, crop, alignment, lms, res))

    @classmethod
    def from_image(
        cls, image: np.ndarray, res: int, *, face_index: int | None = None, name: str = "portrait"
    ) -> Portrait:
        from parla.face.detect import detect_faces, select_face

        face = select_face(detect_faces(image), face_index, name=name)
        return cls.from_landmarks(image, face.landmarks, res)

    @classmethod
    def load(cls, path: str | os.PathLike, res: int, *, face_index: int | None = None) -> Portrait:
        from parla.media.image import load_image

        return cls.from_image(load_image(path), res, face_index=face_index, name=str(path))


@dataclass
class MouthCopy:
    """The portrait with its lips moved (``parla.face.mouth``): for a photo whose lips are apart, the gap cut to a
    fraction (the last closed); for one whose lips are together, opened with the mouth's inside painted. Another
    source the renderer warps from when the driving gap is further from the photo's than the warp can take it."""

    gap: float  # crop px: the copy's inner-lip gap
    image: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray
    source_lr: np.ndarray
    box: tuple[int, int, int, int]  # crop px: where the copy differs from the photo's crop

    @classmethod
    def all(
        cls, image: np.ndarray, crop: np.ndarray, alignment: Alignment, landmarks: np.ndarray, res: int
    ) -> tuple[MouthCopy, ...]:
        from parla.face import lip_opener, mouth
        from parla.face.landmarks import interocular
        from parla.face.warp import downsize

        out, own = [], mouth.gap(landmarks)
        if mouth.needs_copies(landmarks):  # lips apart: copies with a fraction of the gap, the last closed
            lips = mouth.LipCloser(landmarks, crop)
            for q in mouth.COPY_FRACTIONS:
                m = lips.keeping(q)
                c = mouth.cut_crop(crop, m)
                if (box := mouth.changed_box(crop, c)) is not None:  # None: a gap the pixels do not show
                    lms = m.landmarks(landmarks)
                    out.append(cls(q * own, mouth.cut_image(image, alignment, m), c, lms, downsize(c, res), box))
        else:  # lips together: copies with the lips parted and the inside painted
            iod = float(interocular(landmarks))
            for g in mouth.OPEN_GAPS:
                if g * iod <= 1.5 * own:  # the photo shows this much already
                    continue
                o = lip_opener.LipOpener(landmarks, crop, g * iod)
                c = lip_opener.open_crop(crop, o)
                if (box := mouth.changed_box(crop, c)) is not None:
                    lms = o.landmarks(landmarks)
                    out.append(
                        cls(mouth.gap(lms), lip_opener.open_image(image, alignment, o), c, lms, downsize(c, res), box)
                    )
        return tuple(out)
