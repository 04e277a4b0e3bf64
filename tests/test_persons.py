"""Person groups of a prepared dataset: clips of one face stay together, named sources stay together."""

from __future__ import annotations

import numpy as np
import pytest


def _people(n_people: int, clips_each: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(n_people), clips_each)
    embs = centres[truth] + rng.normal(scale=0.15 / np.sqrt(128), size=(len(truth), 128))
    order = rng.permutation(len(truth))
    return embs[order].astype(np.float32), truth[order]


def test_cluster_recovers_people_without_mixing_them():
    from parla.training.persons import cluster

    embs, truth = _people(12, 9)
    labels = cluster(embs)
    assert len(set(labels.tolist())) == 12
    for lab in set(labels.tolist()):
        assert len(set(truth[labels == lab].tolist())) == 1  # no cluster holds two people


def test_named_sources_join_their_clips_but_face_only_corpora_do_not():
    from parla.training.persons import _join_sources

    names = ["grid_a", "grid_b", "lrwar_1", "lrwar_2", "hdtf_x"]
    labels = np.array([0, 1, 2, 3, 2])  # grid's two speakers; hdtf_x looks like lrwar_1
    groups = _join_sources(names, labels)
    assert groups[0] == groups[1]  # one source, one group
    assert groups[2] == groups[4] and groups[2] != groups[3]  # lrwar joined only by face


def test_prepare_names_a_corpus_by_its_prefix_and_refuses_collisions(tmp_path):
    from parla.errors import InputFileError
    from parla.training.prepare import video_sources

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "001.mp4").write_bytes(b"x")
    (b / "001.mp4").write_bytes(b"x")
    assert [n for _, n in video_sources([str(a), f"news={b}"])] == ["001", "news_001"]
    with pytest.raises(InputFileError, match="both be clip"):
        video_sources([str(a), str(b)])
    with pytest.raises(InputFileError, match="prefix"):
        video_sources([f"my_news={b}"])
