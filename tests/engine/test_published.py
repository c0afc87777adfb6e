"""The published engine as an artifact: save/load round trip, generations switched by one pointer, files
checked against the manifest, a crash mid-save leaving the previous engine live, and a refresh that
equals a fresh build. No server: the engine is built from a synthetic graph."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from engine.errors import ArtifactError, NotPublishedError
from engine.pipeline import load_published
from engine.published import EngineStore, ImageFeatures
from engine.workspace import Workspace
from gnn.data.graph import build_graph_tensors
from gnn.retrieval.refresh import MissingFeaturesError, base_features, refresh
from gnn.retrieval.search import build_bundle
from readers.graph_records import ImageRow, TypedEdge


def test_a_published_engine_loads_back_and_answers_the_same(published) -> None:
    ws, engine, export, _ = published
    caption = next(c for c in export.captions if c.split == "test")
    before = engine.searcher.search(caption.candidate, caption.text, k=5).hits
    loaded = load_published(ws)
    assert loaded.version == engine.version and loaded.manifest.generation == 1
    assert loaded.searcher.search(caption.candidate, caption.text, k=5).hits == before
    assert loaded.manifest.config["features"]["text_encoder"] == "minilm"  # the encoders travel with it
    assert set(loaded.manifest.files) == {"model.pt", "bundle.pt", "images.faiss", "images.ids.json",
                                          "image_features.npz", "ranker.json", "facts.npz"}
    np.testing.assert_array_equal(loaded.image_features.matrix, engine.image_features.matrix)


def test_the_second_stage_is_published_with_its_facts_and_answers_from_memory(published) -> None:
    ws, engine, export, _ = published
    stage = engine.searcher.second_stage
    assert stage is not None and stage.sources == ("catalog",) and len(stage.facts) == len(
        [e for e in export.edges if e.relation == "HAS_ATTRIBUTE:catalog"])
    caption = next(c for c in export.captions if c.split == "test")
    before = engine.searcher.search(caption.candidate, caption.text, k=5)
    assert before.reasons is not None and len(before.reasons) == len(before.hits)
    loaded = load_published(ws)
    again = loaded.searcher.search(caption.candidate, caption.text, k=5)
    assert again.hits == before.hits
    assert [[str(r) for r in rs] for rs in again.reasons] == [[str(r) for r in rs] for rs in before.reasons]
    np.testing.assert_array_equal(loaded.searcher.second_stage.facts.keys, stage.facts.keys)
    plain = loaded.searcher.search(caption.candidate, caption.text, k=5, rerank=False)
    assert plain.reasons is None  # stage one alone, as before the second stage existed
    # Free text goes through the caption parser; its roles are what the second stage reads.
    shirt = next(c for c in export.captions if c.candidate == "red-shirt-0")
    roles = loaded.searcher.parse("the same shirt but in blue instead of red")
    assert roles.added == ("blue",) and roles.removed == ("red",)
    found = loaded.searcher.search("red-shirt-0", shirt.text, k=3, roles=roles)
    assert found.reranked and found.hits[0][0].startswith("blue-")
    assert any("has 'blue' (catalog), which the query adds" in r.fact for r in found.reasons[0])


def test_a_save_is_a_new_generation_and_unchanged_files_are_shared(published) -> None:
    ws, engine, _, _ = published
    store = EngineStore(ws.engine)
    first = store.current()
    second = engine.save(store)
    assert store.current() == second != first and store.manifest().generation == 2
    assert os.stat(first / "model.pt").st_ino == os.stat(second / "model.pt").st_ino  # a hard link
    engine.save(store)
    engine.save(store)
    assert [n for n, _ in store.generations()] == [3, 4]  # the live one and the one before


def test_a_crash_while_saving_leaves_the_previous_engine_live(published, monkeypatch) -> None:
    ws, engine, _, _ = published
    store = EngineStore(ws.engine)
    live = store.current()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(engine.index), "save", crash)  # bundle written, index not: mid-save
    engine.rewrite = True  # a save that writes bundle and index whole (as after a full sync)
    with pytest.raises(OSError, match="disk full"):
        engine.save(store)
    assert store.current() == live
    assert load_published(ws).manifest.generation == 1
    monkeypatch.undo()
    engine.save(store)
    assert not list(ws.engine.glob(".gen-*"))  # the half-written folder is gone


@pytest.mark.parametrize("name", ["images.faiss", "bundle.pt", "manifest.json"])
def test_a_corrupt_file_is_refused_by_name_with_the_fix(published, name) -> None:
    ws, _, _, _ = published
    path = EngineStore(ws.engine).current() / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=name) as error:
        load_published(ws)
    assert "tailor sync --full" in str(error.value)


def test_no_published_engine_says_what_to_run(tmp_path) -> None:
    with pytest.raises(NotPublishedError, match="tailor train"):
        load_published(Workspace(tmp_path))


def test_a_refresh_gives_what_a_fresh_build_gives(published) -> None:
    ws, engine, export, feats = published
    image = export.images[0].id
    export.edges.append(TypedEdge("USER_TAGGED", "Image", image, "Attribute", "dress"))  # someone tags it
    old = engine.searcher
    old_vector, old_layers = old.index.vector(image), old.bundle.image_layers.clone()
    config = engine.config.graph
    stage = old.second_stage
    assert not stage.facts.lookup(np.array([0]), np.array([stage.facts.attribute_row["dress"]]))[0].any()
    report = refresh(old, export, base_features(export, engine.image_features, old.text_encoder), config)
    assert image in report.changed_images
    searcher = report.engine
    facts = searcher.second_stage.facts  # the tag is a fact of the second stage at once
    strength, source = facts.lookup(np.array([facts.image_row[image]]), np.array([facts.attribute_row["dress"]]))
    assert strength[0, 0] == 1.0 and int(source[0, 0]) == 4
    assert searcher.second_stage is not stage and not stage.facts.lookup(  # ... in a copy: reads go on
        np.array([0]), np.array([stage.facts.attribute_row["dress"]]))[0].any()
    fresh = build_bundle(searcher.model, build_graph_tensors(export, feats, config), engine.version,
                         [r.image_path for r in export.images])
    torch.testing.assert_close(searcher.bundle.image_layers, fresh.image_layers, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(searcher.bundle.attribute_layers, fresh.attribute_layers, atol=1e-5, rtol=1e-5)
    final = torch.nn.functional.normalize(fresh.image_layers[-1], dim=-1).numpy()
    np.testing.assert_allclose(searcher.index.vector(image), final[fresh.image_row[image]], atol=1e-5)
    # Copy on write: the engine searches were reading is untouched, index and bundle alike.
    assert searcher is not old and searcher.index is not old.index
    np.testing.assert_array_equal(old.index.vector(image), old_vector)
    assert torch.equal(old.bundle.image_layers, old_layers)
    assert not np.allclose(old_vector, searcher.index.vector(image), atol=1e-5)


def test_a_caption_with_nothing_understood_is_answered_by_looks(published) -> None:
    ws, _, export, feats = published
    loaded = load_published(ws)
    caption = next(c for c in export.captions if c.split == "test")
    vague = loaded.searcher.search(caption.candidate, "something similar", k=5)
    assert vague.fallback == "looks" and vague.roles.unsure
    # ... ranked as image search ranks: the candidate's nearest images by image features, itself left out
    ids = [r.id for r in export.images]
    unit = feats["Image"] / np.linalg.norm(feats["Image"], axis=1, keepdims=True)
    scores = unit @ unit[ids.index(caption.candidate)]
    expected = [ids[r] for r in np.argsort(-scores) if ids[r] != caption.candidate][:5]
    assert [i for i, _ in vague.hits] == expected
    understood = loaded.searcher.search(caption.candidate, caption.text, k=5)
    assert understood.fallback == "" and not understood.roles.unsure


def test_image_features_keep_their_content_keys_through_changes_and_a_save(tmp_path) -> None:
    features = ImageFeatures(["a", "b"], np.ones((2, 3), np.float32), ["ka", "kb"])
    changed = features.with_rows(["b", "c"], np.full((2, 3), 2.0, np.float32), ["kb2", "kc"])
    assert changed.ids == ["a", "b", "c"] and changed.keys == ["ka", "kb2", "kc"]
    assert features.key("b") == "kb" and features.get("b")[0] == 1.0  # the original is untouched
    fewer = changed.without({"a"})
    assert fewer.ids == ["b", "c"] and fewer.key("c") == "kc" and fewer.get("a") is None
    fewer.save(tmp_path / "f.npz")
    loaded = ImageFeatures.load(tmp_path / "f.npz")
    assert loaded.ids == ["b", "c"] and loaded.keys == ["kb2", "kc"]
    np.testing.assert_array_equal(loaded.matrix, fewer.matrix)
    assert ImageFeatures(["x"], np.ones((1, 3), np.float32)).key("x") == ""  # unknown, not missing


def test_a_refresh_refuses_an_image_without_features(published) -> None:
    _, engine, export, _ = published
    export.images.append(ImageRow("zz-new", "", "a new product", "test", ""))
    with pytest.raises(MissingFeaturesError, match="zz-new"):
        base_features(export, engine.image_features, engine.searcher.text_encoder)


def test_after_a_local_refresh_a_save_writes_only_the_changed_rows_and_loads_back_the_same(published) -> None:
    from datetime import UTC, datetime

    from engine.published import BUNDLE_DELTA, LOCAL_STATE, LOCAL_TOPOLOGY, BaseGraph
    from gnn.config import RetrievalConfig
    from gnn.retrieval.refresh import refresh_local
    from readers.graph_records import BaseDelta

    ws, engine, export, _ = published
    searcher, store = engine.searcher, EngineStore(ws.engine)
    features = base_features(export, engine.image_features, searcher.text_encoder)
    report = refresh(searcher, export, features, engine.config.graph, local=RetrievalConfig(hub_degree=8))
    searcher = engine.searcher = report.engine  # the refreshed copy is the one searched from now on
    engine.base = BaseGraph(None, datetime.now(UTC), report.local)
    engine.rewrite = True
    whole = engine.save(store)
    assert {LOCAL_TOPOLOGY, LOCAL_STATE} <= set(engine.manifest.files) and BUNDLE_DELTA not in engine.manifest.files

    image = export.images[3].id
    export.edges.append(TypedEdge("USER_TAGGED", "Image", image, "Attribute", "dress"))
    edges = [e for e in export.edges if e.src == image and e.src_kind == "Image"]
    delta = BaseDelta([image], [], edges, attributes=dict(export.attributes), image_count=len(export.images))
    local = refresh_local(searcher, report.local, delta)
    assert local is not None and image in local.changed_images
    engine.changed_images.update(local.changed_images)
    caption = next(c for c in export.captions if c.split == "test")
    before = searcher.search(caption.candidate, caption.text, k=5).hits
    after = engine.save(store)
    for name in ("bundle.pt", "images.faiss", LOCAL_TOPOLOGY):  # linked, not written again
        assert os.stat(whole / name).st_ino == os.stat(after / name).st_ino
    assert engine.manifest.files["bundle.pt"] == store.manifest(whole).files["bundle.pt"]
    assert (after / BUNDLE_DELTA).exists()

    loaded = load_published(ws)  # verifies every checksum, then applies the changed rows
    torch.testing.assert_close(loaded.bundle.image_layers, searcher.bundle.image_layers)
    torch.testing.assert_close(loaded.bundle.attribute_layers, searcher.bundle.attribute_layers)
    np.testing.assert_allclose(loaded.index.vector(image), searcher.index.vector(image), atol=1e-6)
    assert loaded.searcher.search(caption.candidate, caption.text, k=5).hits == before
    assert loaded.base.local is not None and loaded.changed_images == set(local.changed_images)
    state, mine = loaded.base.local.state_blob(), report.local.state_blob()
    assert state["attribute_nodes"] == mine["attribute_nodes"] and torch.equal(state["dead"], mine["dead"])
    torch.testing.assert_close(state["hub_sums"], mine["hub_sums"])
