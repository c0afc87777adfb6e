"""The published engine as an artifact: save/load round trip, generations switched by one pointer, files
checked against the manifest, a crash mid-save leaving the previous engine live, and a refresh that
equals a fresh build. No server: the engine is built from a synthetic graph."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from engine.errors import ArtifactError, NotPublishedError
from engine.pipeline import GraphFeatures, PreparedGraph, load_published, publish
from engine.published import EngineStore
from engine.workspace import Workspace
from gnn.config import ExperimentConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.features.cache import FeatureCache, text_key
from gnn.retrieval.refresh import base_features, refresh
from gnn.retrieval.search import build_bundle
from gnn.training.fit import fit_model, model_config
from readers.graph_records import TypedEdge
from tests.gnn.synthetic import synthetic_export

TEXT = {"config": "unused-in-tests", "name": "synthetic-text", "dim": 8}


@pytest.fixture
def published(tmp_path):
    """A one-epoch graph model over the synthetic catalog, published into a fresh workspace whose text
    cache already holds every caption and attribute (so no encoder is ever built)."""
    export, feats = synthetic_export(per_cell=4)
    ws = Workspace(tmp_path / "home")
    cache = FeatureCache(ws.features, TEXT["name"], TEXT["dim"])
    texts = [c.text for c in export.captions] + list(export.attributes)
    vectors = np.concatenate([feats["Caption"], feats["Attribute"]])
    unique = dict(zip(texts, vectors, strict=True))
    cache.put_many([text_key(t) for t in unique], np.stack(list(unique.values())))
    config = model_config("graph_catalog", ExperimentConfig(train=TrainConfig(epochs=1, batch_size=64, negatives=16)))
    config.model.hidden = 16
    config.simulation.enabled = False
    g = build_graph_tensors(export, feats, config.graph)
    run = fit_model("graph_catalog", g, config, ws.checkpoints, log=lambda s: None)
    prepared = PreparedGraph(export, GraphFeatures(feats, [], [], {"text": TEXT, "image": {"dim": 16}}))
    engine = publish(run, prepared, ws)
    return ws, engine, export, feats


def test_a_published_engine_loads_back_and_answers_the_same(published) -> None:
    ws, engine, export, _ = published
    caption = next(c for c in export.captions if c.split == "test")
    before = engine.searcher.search(caption.candidate, caption.text, k=5).hits
    loaded = load_published(ws)
    assert loaded.version == engine.version and loaded.manifest.generation == 1
    assert loaded.searcher.search(caption.candidate, caption.text, k=5).hits == before
    assert loaded.manifest.config["features"]["text_encoder"] == "minilm"  # the encoders travel with it
    assert set(loaded.manifest.files) == {"model.pt", "bundle.pt", "images.faiss", "images.ids.json",
                                          "image_features.npz"}
    np.testing.assert_array_equal(loaded.image_features.matrix, engine.image_features.matrix)


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
    searcher = engine.searcher
    config = engine.config.graph
    report = refresh(searcher, export, base_features(export, engine.image_features, searcher.text_encoder), config)
    assert image in report.changed_images
    fresh = build_bundle(searcher.model, build_graph_tensors(export, feats, config), engine.version,
                         [r.image_path for r in export.images])
    torch.testing.assert_close(searcher.bundle.image_layers, fresh.image_layers, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(searcher.bundle.attribute_layers, fresh.attribute_layers, atol=1e-5, rtol=1e-5)
    final = torch.nn.functional.normalize(fresh.image_layers[-1], dim=-1).numpy()
    np.testing.assert_allclose(searcher.index.vector(image), final[fresh.image_row[image]], atol=1e-5)


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
