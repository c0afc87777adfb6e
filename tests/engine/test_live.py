"""The live engine against a real Neo4j: after a like and tags, a local (incremental) sync gives the
embeddings a full sync gives, reads what changed by index, and its saved generation loads back the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("neo4j")

from engine.live import LiveEngine  # noqa: E402
from engine.pipeline import GraphFeatures, PreparedGraph, publish  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from gnn.config import ExperimentConfig, RetrievalConfig, TrainConfig  # noqa: E402
from gnn.data.graph import build_graph_tensors  # noqa: E402
from gnn.features.cache import FeatureCache, text_key  # noqa: E402
from gnn.training.fit import fit_model, model_config  # noqa: E402
from graphdb.export import export_graph, read_base_delta  # noqa: E402
from graphdb.ingest import ingest_images, ingest_queries  # noqa: E402
from graphdb.interactions import like, store_query, tag_image  # noqa: E402
from readers.captions import CaptionRoles  # noqa: E402
from readers.records import AttributeValue, ImageRecord, QueryRecord  # noqa: E402
from tests.gnn.synthetic import COLOURS, synthetic_export  # noqa: E402

pytestmark = pytest.mark.neo4j
TEXT = {"config": "unused-in-tests", "name": "synthetic-text", "dim": 8}
EXTRA_TEXTS = ("striped", "make it blue")


def _load(driver) -> None:
    export, _ = synthetic_export(per_cell=4)
    kinds = {**{c: "colour" for c in COLOURS}}
    images = []
    for r in export.images:
        colour, kind, _ = r.id.split("-")
        images.append(ImageRecord(r.id, r.title, "", r.split, r.group,
                                  (AttributeValue(kinds[colour], colour), AttributeValue("article_type", kind))))
    ingest_images(driver, images, "synthetic")
    queries = [QueryRecord(c.id, c.candidate, c.target, c.text, c.split, c.group,
                           added=(c.text.split()[-1],), removed=(c.text.split()[1],)) for c in export.captions]
    ingest_queries(driver, queries, "synthetic")


def _publish(driver, ws: Workspace, retrieval: RetrievalConfig):
    """A one-epoch model over what the database holds, published with ``retrieval``."""
    _, feats = synthetic_export(per_cell=4)
    reference, _ = synthetic_export(per_cell=4)
    export = export_graph(driver)
    by_image = {r.id: feats["Image"][i] for i, r in enumerate(reference.images)}
    rng = np.random.default_rng(0)
    texts = sorted({c.text for c in export.captions} | set(export.attributes) | set(EXTRA_TEXTS))
    text_vec = {t: rng.standard_normal(TEXT["dim"]).astype(np.float32) for t in texts}
    FeatureCache(ws.features, TEXT["name"], TEXT["dim"]).put_many([text_key(t) for t in texts],
                                                                  np.stack([text_vec[t] for t in texts]))
    arrays = {"Image": np.stack([by_image[r.id] for r in export.images]),
              "Caption": np.stack([text_vec[c.text] for c in export.captions]),
              "Attribute": np.stack([text_vec[a] for a in export.attributes])}
    config = model_config("graph_catalog", ExperimentConfig(train=TrainConfig(epochs=1, batch_size=64, negatives=16)))
    config.model.hidden = 16
    config.simulation.enabled = False
    run = fit_model("graph_catalog", build_graph_tensors(export, arrays, config.graph), config, ws.checkpoints,
                    log=lambda s: None)
    prepared = PreparedGraph(export, GraphFeatures(arrays, [], [], {"text": TEXT, "image": {"dim": 16}}))
    return publish(run, prepared, ws, retrieval=retrieval)


@pytest.mark.parametrize("hub_degree,tolerance,bound", [(10**6, 1e-3, 1e-5), (8, 1e-2, 1e-2)])
def test_a_local_sync_gives_what_a_full_sync_gives(empty_graph, tmp_path, hub_degree, tolerance, bound) -> None:
    driver = empty_graph
    _load(driver)
    ws = Workspace(tmp_path / "home")
    _publish(driver, ws, RetrievalConfig(hub_degree=hub_degree, hub_tolerance=tolerance))
    live = LiveEngine(ws)
    first = live.sync(driver)
    assert first.mode == "full" and live.published.base.local is not None
    assert (len(live.published.base.local.hub_row) > 0) == (hub_degree == 8)

    candidate = "red-dress-3"
    query = store_query(driver, candidate, "make it blue", CaptionRoles(added=("blue",)))
    like(driver, query, ["blue-dress-3", "blue-dress-1"])
    tag_image(driver, "blue-dress-3", "striped")  # a new attribute
    tag_image(driver, "green-shirt-0", "red")
    report = live.sync(driver)
    assert report.mode == "incremental" and report.changed_images >= 3 and report.new_attributes == 1
    live.close()

    full = LiveEngine(ws)  # the generation the local sync saved, then everything recomputed
    reloaded = full.engine.bundle.image_layers.clone()
    assert full.sync(driver, full=True).mode == "full"
    got, want = live.engine.bundle, full.engine.bundle
    assert got.attribute_names == want.attribute_names
    assert (got.image_layers[-1] - want.image_layers[-1]).abs().max().item() < bound
    assert (got.attribute_layers[-1] - want.attribute_layers[-1]).abs().max().item() < bound
    torch.testing.assert_close(reloaded, got.image_layers)  # what was saved is what was in memory
    full.close()

    delta = read_base_delta(driver, ["blue-dress-3"], [query], [query])
    assert delta.still_liked == {query} and delta.image_count == 48 and "striped" in delta.attributes
    assert {(e.relation, e.dst) for e in delta.edges if e.src == "blue-dress-3"} >= {
        ("USER_TAGGED", "striped"), ("LIKED_FOR", query), ("HAS_ATTRIBUTE:catalog", "blue")}
    assert [c.id for c in delta.liked_captions] == [query] and delta.liked_captions[0].candidate == candidate
