"""Who speaks in each prepared clip: a face embedding per clip, clustered into persons.

Corpora of short clips carry no speaker labels (2,112 news clips of many presenters), yet every split that
claims to measure unseen speakers must keep each person on one side. Each clip gets dlib's 128-d identity
embedding (mean of three frames, read from the aligned crops, so the videos are not decoded again); clips are
grouped by centroid clustering at PERSON_DISTANCE. Clips of the named corpora that share a source prefix (grid,
lrs2, hdtf, ...) are joined into one group as well, so a held-out source is never split either.

Files in the dataset folder:
  persons.npz   clip names and their embeddings (a cache: a clip prepared later is embedded on the next run)
  persons.json  {"clips": {name: group}, "people": face clusters, "groups": n, "minutes": {group: minutes}}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from parla.files import atomic_output, write_text_atomic
from parla.progress import progress

# dlib's embedding separates people at about 0.6 on single photos. Clip means of one news presenter lie much
# closer: on the 2,171 training clips the nearest other clip is at 0.125 (median; 90 % under 0.17), while the median
# pair is at 0.55. At 0.5 look-alike presenters chained into one cluster of 446 clips (19 "people"); at 0.35, in the
# gap, 86 clusters. A person split into two clusters is harmless once kept on one side; two people merged are not.
PERSON_DISTANCE = 0.35
REFINE_ROUNDS = 3
# Clips whose names carry no corpus prefix of their own (lrwar_00139) are grouped by face only.
FACE_ONLY_PREFIXES = ("lrwar",)
NAMED = "named"  # the corpus of every clip whose prefix names its own source (grid, lrs2, pcavs, ...)


def corpus(name: str) -> str:
    """The corpus of a prepared clip: a face-only prefix (``lrwar``), else the named sources together."""
    src = name.split("_")[0]
    return src if src in FACE_ONLY_PREFIXES else NAMED


def clip_embedding(crops: np.ndarray, landmarks: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Mean unit-norm identity embedding of three valid frames of a clip, or None without a face."""
    from parla.face.detect import face_embedding

    idx = np.flatnonzero(valid & ~np.isnan(landmarks).any(axis=(1, 2)))
    if len(idx) == 0:
        return None
    picks = idx[np.unique(np.linspace(0, len(idx) - 1, 3).round().astype(int))]
    embs = [face_embedding(np.asarray(crops[i]), landmarks[i]) for i in picks]
    e = np.mean([v / max(np.linalg.norm(v), 1e-9) for v in embs], axis=0)
    return (e / max(np.linalg.norm(e), 1e-9)).astype(np.float32)


def _embeddings(clips_dir: Path, cache: Path, show: bool) -> tuple[list[str], np.ndarray]:
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as z:
            known = dict(zip(z["names"].tolist(), z["embeddings"], strict=True))
    metas = sorted(clips_dir.glob("*.npz"))
    names, out = [], []
    with progress(len(metas), "embedding faces", enabled=show, unit="clip") as bar:
        for meta in metas:
            name = meta.stem
            if name not in known:
                crops_path = meta.with_name(name + ".crops.npy")
                if crops_path.is_file():
                    with np.load(meta) as z:
                        lms, valid = z["landmarks"], z["valid"]
                    e = clip_embedding(np.load(crops_path, mmap_mode="r"), lms, valid)
                    if e is not None:
                        known[name] = e
            if name in known:
                names.append(name)
                out.append(known[name])
            bar.update(1)
    embs = np.stack(out) if out else np.zeros((0, 128), np.float32)
    with atomic_output(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, names=np.array(names), embeddings=embs)
    return names, embs


def cluster(embs: np.ndarray, threshold: float = PERSON_DISTANCE) -> np.ndarray:
    """Centroid clustering: each embedding joins the nearest centroid within ``threshold`` or starts a new one,
    then every embedding is reassigned to its nearest centroid for a few rounds. Returns labels 0..k-1."""
    labels = np.full(len(embs), -1)
    cents: list[np.ndarray] = []
    for i, e in enumerate(embs):
        if cents:
            d = np.linalg.norm(np.stack(cents) - e, axis=1)
            j = int(np.argmin(d))
            if d[j] < threshold:
                labels[i] = j
                continue
        labels[i] = len(cents)
        cents.append(e.copy())
    for _ in range(REFINE_ROUNDS):
        c = np.stack([embs[labels == k].mean(0) for k in range(len(cents))])
        d = np.linalg.norm(embs[:, None] - c[None], axis=2)
        new = np.where(d.min(1) < threshold, d.argmin(1), labels)
        if (new == labels).all():
            break
        labels = new
    _, labels = np.unique(labels, return_inverse=True)  # drop emptied clusters
    return labels


def _join_sources(names: list[str], labels: np.ndarray) -> np.ndarray:
    """Union of face clusters and source prefixes (a source's clips form one group)."""
    parent = list(range(int(labels.max()) + 1 if len(labels) else 0))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first: dict[str, int] = {}
    for n, lab in zip(names, labels, strict=True):
        src = n.split("_")[0]
        if src in FACE_ONLY_PREFIXES:
            continue
        if src in first:
            parent[find(int(lab))] = find(first[src])
        else:
            first[src] = int(lab)
    roots = np.array([find(int(lab)) for lab in labels])
    _, out = np.unique(roots, return_inverse=True)
    return out


def person_groups(data_dir: str | Path, *, show: bool = True) -> dict:
    """Embed every prepared clip (cached), cluster into persons and write persons.json; returns its content."""
    data = Path(data_dir)
    names, embs = _embeddings(data / "clips", data / "persons.npz", show)
    faces = cluster(embs) if names else np.zeros(0, int)
    labels = _join_sources(names, faces) if names else faces
    minutes: dict[str, float] = {}
    for n, lab in zip(names, labels, strict=True):
        with np.load(data / "clips" / f"{n}.npz") as z:
            secs = len(z["valid"]) / float(z["fps"])
        minutes[str(lab)] = minutes.get(str(lab), 0.0) + secs / 60
    result = {
        "clips": {n: int(lab) for n, lab in zip(names, labels, strict=True)},
        "people": int(len(set(faces.tolist()))),  # face clusters
        "groups": int(len(set(labels.tolist()))),  # after joining each named source's clips
        "minutes": {k: round(v, 3) for k, v in sorted(minutes.items(), key=lambda kv: int(kv[0]))},
        "threshold": PERSON_DISTANCE,
    }
    write_text_atomic(data / "persons.json", json.dumps(result, indent=1) + "\n")
    return result


def load_groups(data_dir: str | Path) -> dict[str, int] | None:
    """{clip name: person group} from persons.json, or None when the dataset has none."""
    path = Path(data_dir) / "persons.json"
    if not path.is_file():
        return None
    return {k: int(v) for k, v in json.loads(path.read_text())["clips"].items()}
