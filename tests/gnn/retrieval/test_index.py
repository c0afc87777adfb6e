"""The FAISS index of image embeddings: replace, remove (retired products), re-add, and a save/load that
keeps removed ids out."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.retrieval.index import ImageIndex


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)


def test_removed_ids_are_never_returned_and_can_come_back(tmp_path) -> None:
    index = ImageIndex(8)
    ids = [f"p{i}" for i in range(6)]
    vectors = _vectors(6)
    index.add(ids, vectors)
    assert index.remove(["p1", "p4", "unknown"]) == 2
    assert len(index) == 4 and "p1" not in index and "p0" in index
    hits = index.search(vectors, k=6)
    assert all({h for h, _ in row} == {"p0", "p2", "p3", "p5"} for row in hits)
    assert index.search(vectors[1:2], k=1)[0][0][0] != "p1"  # its own vector finds something else
    index.save(tmp_path / "images.faiss")
    loaded = ImageIndex.load(tmp_path / "images.faiss")
    assert len(loaded) == 4 and "p4" not in loaded
    assert loaded.search(vectors, k=6) == hits
    loaded.add(["p4"], vectors[4:5])  # a product back in the catalog gets a new row
    assert loaded.search(vectors[4:5], k=1)[0][0][0] == "p4"
    np.testing.assert_allclose(loaded.vector("p4"), vectors[4] / np.linalg.norm(vectors[4]), atol=1e-6)


def test_a_load_refuses_ids_that_do_not_match_the_vectors(tmp_path) -> None:
    index = ImageIndex(8)
    index.add(["a", "b"], _vectors(2))
    index.save(tmp_path / "images.faiss")
    meta = tmp_path / "images.ids.json"
    meta.write_text(meta.read_text().replace('"b"', "null"))
    with pytest.raises(ValueError, match="2 vectors but 1 ids"):
        ImageIndex.load(tmp_path / "images.faiss")
