"""graphdb.export.export_graph_columns: the graph read as columns is the graph read as records, and gives
the same tensors."""

from __future__ import annotations

from array import array

import numpy as np
import pytest
import torch

pytest.importorskip("neo4j")

from gnn.config import GraphConfig  # noqa: E402
from gnn.data.graph import build_graph_tensors, build_graph_tensors_from_columns  # noqa: E402
from graphdb.export import export_base, export_graph, export_graph_columns  # noqa: E402
from graphdb.interactions import like, store_query, tag_image  # noqa: E402
from readers.captions import CaptionRoles  # noqa: E402
from readers.graph_records import GraphColumns  # noqa: E402
from tests.engine.test_live import _load  # noqa: E402

pytestmark = pytest.mark.neo4j


def _edges(columns: GraphColumns) -> dict[str, list[tuple[int, int]]]:
    return {r: sorted(zip(c.src, c.dst, strict=True)) for r, c in columns.edges.items() if len(c)}


def _same(a: GraphColumns, b: GraphColumns) -> None:
    for name in ("image_ids", "image_paths", "image_titles", "image_splits", "image_groups", "caption_ids",
                 "caption_texts", "caption_splits", "caption_groups", "attributes"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.caption_candidate == b.caption_candidate and a.caption_target == b.caption_target
    assert _edges(a) == _edges(b)


def test_columns_hold_what_the_records_hold_and_give_the_same_tensors(empty_graph) -> None:
    driver = empty_graph
    _load(driver)
    query = store_query(driver, "red-dress-3", "make it blue", CaptionRoles(added=("blue",)))
    like(driver, query, ["blue-dress-3", "blue-dress-1"])
    tag_image(driver, "green-shirt-0", "red")

    full = export_graph_columns(driver)
    _same(full, GraphColumns.from_export(export_graph(driver)))
    base = export_graph_columns(driver, base_only=True)
    _same(base, GraphColumns.from_export(export_base(driver)))
    assert base.caption_ids == [query] and len(full.caption_ids) > 100

    export = export_graph(driver)
    rng = np.random.default_rng(0)
    feats = {"Image": rng.standard_normal((len(export.images), 4)), "Caption": rng.standard_normal((len(export.captions), 3)),
             "Attribute": rng.standard_normal((len(export.attributes), 3))}
    a, b = build_graph_tensors(export, feats, GraphConfig()), build_graph_tensors_from_columns(full, feats, GraphConfig())
    assert a.ids == b.ids and a.offsets == b.offsets and a.relations == b.relations
    triples = [sorted(zip(*g.edge_index.tolist(), g.edge_type.tolist(), strict=True)) for g in (a, b)]
    assert triples[0] == triples[1]
    assert set(a.queries) == set(b.queries)
    for split in a.queries:
        qa, qb = a.queries[split], b.queries[split]
        assert qa.ids == qb.ids and qa.groups == qb.groups
        for name in ("caption", "candidate", "target"):
            assert torch.equal(getattr(qa, name), getattr(qb, name))
    assert isinstance(full.caption_candidate, array)
