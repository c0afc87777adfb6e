"""gnn.retrieval.index: every kind finds what exact search finds (nearly), follows replaced, added and
removed vectors, and loads back as saved; shards search as one index."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.retrieval.index import ImageIndex, IndexSpec


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Vectors around 50 centres, as embeddings of a catalog's product groups are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    return (centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def recall(index: ImageIndex, exact: ImageIndex, queries: np.ndarray, k: int = 10) -> float:
    got = index.search(queries, k)
    want = exact.search(queries, k)
    return float(np.mean([len({i for i, _ in g} & {i for i, _ in w}) / k for g, w in zip(got, want, strict=True)]))


SPECS = [IndexSpec("ivf"), IndexSpec("hnsw"), IndexSpec("flat", shards=3), IndexSpec("hnsw", shards=2),
         IndexSpec("ivf", shards=2)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}-x{s.shards}")
def test_each_kind_finds_what_exact_search_finds_and_follows_changes(spec, tmp_path) -> None:
    vectors = clustered(6000)
    ids = [f"p{i}" for i in range(len(vectors))]
    exact, index = ImageIndex(32), ImageIndex(32, spec)
    for ix in (exact, index):
        ix.add(ids, vectors)
    queries = clustered(200, seed=1)
    assert recall(index, exact, queries) >= (1.0 if spec.kind == "flat" else 0.9)
    if spec.kind == "flat":  # shards merge into the same answer as one exact index
        assert index.search(queries[:5], 10) == exact.search(queries[:5], 10)

    # A vector moved by an interaction, a new product, a removed one, the candidate left out.
    target = queries[0] * 3
    index.add(["p17", "new"], np.stack([target, -target]))
    assert index.search(target[None], 1)[0][0][0] == "p17"
    assert index.search(-target[None], 1)[0][0][0] == "new"
    np.testing.assert_allclose(index.vector("p17"), target / np.linalg.norm(target), atol=1e-6)
    assert index.remove(["p17", "nope"]) == 1 and len(index) == len(ids)
    hits = index.search(target[None], 20)[0]
    assert "p17" not in {i for i, _ in hits} and len(hits) == 20
    assert all(i != "p3" for i, _ in index.search(vectors[3][None], 5, exclude=["p3"])[0])

    index.version = "v1"
    index.save(tmp_path / "images.faiss")
    loaded = ImageIndex.load(tmp_path / "images.faiss")
    assert loaded.spec == spec and loaded.version == "v1" and len(loaded) == len(index)
    assert loaded.search(queries[:20], 10) == index.search(queries[:20], 10)
    loaded.add(["p5"], target[None])  # still updatable after a load
    assert loaded.search(target[None], 1)[0][0][0] == "p5"


def test_a_flat_index_written_before_index_kinds_existed_still_loads(tmp_path) -> None:
    import json

    import faiss

    vectors = clustered(50)
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    old.add_with_ids(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.arange(50, dtype=np.int64))
    (tmp_path / "images.faiss").write_bytes(faiss.serialize_index(old).tobytes())
    (tmp_path / "images.ids.json").write_text(json.dumps({"dim": 32, "ids": [f"p{i}" for i in range(50)],
                                                          "version": "v0"}))
    index = ImageIndex.load(tmp_path / "images.faiss")
    assert index.spec.kind == "flat" and index.search(vectors[7][None], 1)[0][0][0] == "p7"
    index.add(["p7"], -vectors[7][None])
    assert index.search(-vectors[7][None], 1)[0][0][0] == "p7"


def test_unknown_kinds_are_named() -> None:
    with pytest.raises(ValueError, match="annoy"):
        IndexSpec("annoy")


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


def test_auto_is_exact_for_a_small_catalog_and_ivf_for_a_large_one() -> None:
    from gnn.config import RetrievalConfig
    from gnn.retrieval.index import AUTO_IVF_FROM

    spec = IndexSpec.of(RetrievalConfig())
    assert spec.kind == "auto"  # the default, resolved only once the size is known
    assert spec.for_size(AUTO_IVF_FROM - 1).kind == "flat"
    assert spec.for_size(AUTO_IVF_FROM).kind == "ivf"
    assert IndexSpec("hnsw").for_size(10 * AUTO_IVF_FROM).kind == "hnsw"  # a chosen kind stays
    assert ImageIndex(8, RetrievalConfig(), size=100).spec.kind == "flat"
    assert ImageIndex(8, RetrievalConfig(), size=AUTO_IVF_FROM).spec.kind == "ivf"
