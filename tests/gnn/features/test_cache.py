"""Feature cache (round trip, atomicity, compaction) and featurisation through it (reports, reruns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnn.features.cache import FeatureCache, file_key, text_key
from gnn.features.featurize import FeaturizationError, featurize_images, featurize_texts


def _keys(n: int, salt: str = "") -> list[str]:
    return [text_key(f"{salt}{i}") for i in range(n)]


def _vecs(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# ---- cache ---------------------------------------------------------------------------------------


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "model/x", 8)
    keys, vecs = _keys(5), _vecs(5, 8)
    assert cache.put_many(keys, vecs) == 5
    assert cache.put_many(keys[:2] + [keys[0]], vecs[:3]) == 0  # already there / duplicated in the call
    assert len(cache) == 5 and keys[3] in cache and text_key("nope") not in cache
    found, got = cache.get_many([keys[4], text_key("nope"), keys[0]])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(got[0], vecs[4])
    np.testing.assert_array_equal(got[1], 0)
    np.testing.assert_array_equal(got[2], vecs[0])
    reopened = FeatureCache(tmp_path, "model/x", 8)  # from disk, another "process"
    assert len(reopened) == 5
    np.testing.assert_array_equal(reopened.get_many(keys)[1], vecs)
    assert reopened.get(keys[1]) is not None and reopened.get(text_key("nope")) is None


def test_rejects_wrong_shapes_dims_and_keys(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "m", 4)
    with pytest.raises(ValueError):
        cache.put_many(_keys(2), _vecs(2, 5))
    with pytest.raises(ValueError):
        cache.put_many(_keys(1), np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        cache.put_many(["x" * 65], _vecs(1, 4))
    with pytest.raises(ValueError, match="dim=4"):
        FeatureCache(tmp_path, "m", 8)  # same model, other dim: refuse rather than mix
    assert len(FeatureCache(tmp_path, "other", 8)) == 0  # other models live in other folders


def test_failed_write_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path, "m", 4)
    cache.put_many(_keys(3), _vecs(3, 4))

    def boom(f, arr, allow_pickle=False):  # dies half-way through writing a shard
        f.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.put_many(_keys(3, "new"), _vecs(3, 4, seed=1))
    monkeypatch.undo()
    assert not list(cache.dir.glob(".tmp-*"))  # no half-written file left behind
    reopened = FeatureCache(tmp_path, "m", 4)
    assert len(reopened) == 3
    np.testing.assert_array_equal(reopened.get_many(_keys(3))[1], _vecs(3, 4))


def test_compaction_bounds_shards_and_keeps_everything(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "m", 4, max_shards=3)
    all_keys, all_vecs = [], []
    for i in range(7):
        k, v = _keys(2 + i, f"batch{i}-"), _vecs(2 + i, 4, seed=i)
        cache.put_many(k, v)
        all_keys += k
        all_vecs.append(v)
        assert cache.num_shards <= 3
    other = FeatureCache(tmp_path, "m", 4)  # a second writer appends its own shard
    other.put_many(_keys(2, "other-"), _vecs(2, 4, seed=99))
    cache.compact()
    assert cache.num_shards == 1 and len(cache) == len(all_keys) + 2
    np.testing.assert_array_equal(cache.get_many(all_keys)[1], np.concatenate(all_vecs))
    assert len(FeatureCache(tmp_path, "m", 4)) == len(all_keys) + 2


# ---- featurisation -------------------------------------------------------------------------------


def test_featurize_images_reports_broken_and_reruns_from_cache(
    lite0, image_zoo: dict[str, Path], zoo_expect, tmp_path: Path
) -> None:
    items = [(f"node-{name}", path) for name, path in image_zoo.items()] + [("node-none", None)]
    cache = FeatureCache(tmp_path / "cache", lite0.name, lite0.dim)
    first = featurize_images(items, lite0, cache, chunk_size=4)

    good = [f"node-{n}" for n, why in zoo_expect.items() if why is None]
    assert first.ids == good  # input order, failures left out
    assert first.features.shape == (len(good), 1280)
    reasons = {f.id: f.reason for f in first.failed}
    for name, why in zoo_expect.items():
        if why is not None:
            assert why in reasons[f"node-{name}"], (name, reasons)
    assert reasons["node-none"] == "no image path"
    assert {f.source for f in first.failed} >= {str(image_zoo["garbage.jpg"])}
    # good.jpg and good_copy.jpg have the same bytes: computed once
    assert first.computed == len(good) - 1 and first.cached == 1
    np.testing.assert_array_equal(first.features[0], first.features[1])
    assert len(cache) == len(good) - 1

    again = featurize_images(
        items, lite0, FeatureCache(tmp_path / "cache", lite0.name, lite0.dim)
    )
    assert again.computed == 0 and again.cached == len(good)
    assert again.ids == first.ids
    np.testing.assert_allclose(again.features, first.features, atol=1e-6)


def test_strict_raises_naming_the_file_and_keeps_the_cache(lite0, image_zoo, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache", lite0.name, lite0.dim)
    ok = [("a", image_zoo["good.jpg"]), ("b", image_zoo["other.png"])]
    featurize_images(ok, lite0, cache)
    before = cache.get_many([file_key(p) for _, p in ok])[1]

    bad = [("c", image_zoo["gray.png"]), ("d", image_zoo["truncated.jpg"]), ("e", image_zoo["cmyk.jpg"])]
    with pytest.raises(FeaturizationError, match="truncated.jpg") as info:
        featurize_images(ok + bad, lite0, cache, strict=True)
    assert [f.id for f in info.value.failures] == ["d"]
    with pytest.raises(FeaturizationError, match="missing.jpg"):
        featurize_images([("m", image_zoo["missing.jpg"])], lite0, cache, strict=True)

    reopened = FeatureCache(tmp_path / "cache", lite0.name, lite0.dim)
    found, after = reopened.get_many([file_key(p) for _, p in ok])
    assert found.all()
    np.testing.assert_array_equal(after, before)
    # the good images of the failing chunk were stored before raising: a rerun computes only new work
    assert file_key(image_zoo["gray.png"]) in reopened


def test_featurize_images_without_cache_and_empty(lite0, photos) -> None:
    res = featurize_images([(1, photos[0]), (2, photos[1])], lite0, None)
    assert res.ids == [1, 2] and res.computed == 2 and res.cached == 0
    empty = featurize_images([], lite0, None)
    assert empty.features.shape == (0, 1280) and empty.ids == []


def test_featurize_texts_through_the_cache(minilm, tmp_path: Path) -> None:
    items = [
        ("c1", "is black and sleeveless"),
        ("c2", "has long sleeves"),
        ("c3", "   "),
        ("c4", None),
        ("c5", "is black and sleeveless"),
    ]
    cache = FeatureCache(tmp_path, minilm.name, minilm.dim)
    first = featurize_texts(items, minilm, cache)
    assert first.ids == ["c1", "c2", "c5"] and first.computed == 2 and first.cached == 1
    assert {f.id: f.reason for f in first.failed} == {"c3": "empty text", "c4": "not a string (NoneType)"}
    np.testing.assert_allclose(np.linalg.norm(first.features, axis=1), 1.0, atol=1e-5)
    again = featurize_texts(items + [("c6", "is red")], minilm, cache)
    assert again.computed == 1 and again.cached == 3
    np.testing.assert_allclose(again.features[:3], first.features, atol=1e-6)
    with pytest.raises(FeaturizationError, match="c3"):
        featurize_texts(items, minilm, cache, strict=True)


def test_cache_must_match_encoder(lite0, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dim"):
        featurize_images([], lite0, FeatureCache(tmp_path, lite0.name, 10))
