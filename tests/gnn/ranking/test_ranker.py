"""gnn.ranking: the second stage learns from training queries, re-orders softly, falls back to the
embedding ranking without facts, and its reasons are what ordered the results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gnn.config import GraphConfig, RankerConfig
from gnn.data.graph import build_graph_tensors
from gnn.nn.baselines import ImageOnly
from gnn.ranking.facts import FactTable
from gnn.ranking.model import LinearRanker
from gnn.ranking.stage import SecondStage
from gnn.ranking.train import list_recall, stage_one, train_ranker, two_stage_ranked
from gnn.training.evaluation import gallery_rows, retriever_scorer
from readers.graph_records import GraphExport, ImageRow, TypedEdge
from tests.gnn.synthetic import synthetic_export

CONFIG = RankerConfig(candidates=20, epochs=200, patience=200, like_share=0.2, liked_per_example=3)


@pytest.fixture(scope="module")
def trained():
    """A ranker over image-only stage one (which ignores the caption) on the synthetic catalog."""
    export, feats = synthetic_export(per_cell=6)
    g = build_graph_tensors(export, feats, GraphConfig())
    facts = FactTable.from_export(export, ("catalog",))
    score = retriever_scorer(ImageOnly(), g)
    result = train_ranker(facts, g, score, export.caption_roles(), CONFIG, log=lambda s: None)
    return export, g, facts, score, result


def test_facts_lift_the_target_that_the_embedding_alone_misses(trained) -> None:
    export, g, facts, score, result = trained
    ranker = result.ranker
    assert ranker.weight_of("has_added") > 0 and ranker.weight_of("lacks_removed") > 0
    assert ranker.weight_of("keeps:article_type") > 0
    test = g.queries["test"].with_targets()
    roles = export.caption_roles()
    two_stage = list_recall(two_stage_ranked(ranker, facts, g, score, test, "test", roles), test.target, (1, 3))
    one_stage = list_recall(stage_one(score, test, gallery_rows(g, "test"), CONFIG.candidates).ranked, test.target,
                            (1, 3))
    assert two_stage[3] > one_stage[3] + 40 and two_stage[1] > one_stage[1] + 20
    # Trained on training queries, its epoch picked on validation ones: the history says so.
    assert result.counts["train_lists"] == len(g.queries["train"].with_targets())
    assert result.counts["val_lists"] == len(g.queries["val"].with_targets())
    # Off, the second stage answers with stage one's order exactly.
    off = dataclasses.replace(ranker, config=dataclasses.replace(ranker.config, enabled=False))
    torch.testing.assert_close(two_stage_ranked(off, facts, g, score, test, "test", roles),
                               stage_one(score, test, gallery_rows(g, "test"), CONFIG.candidates).ranked)


def _hits(stage: SecondStage, ids: list[str]) -> list[tuple[str, float]]:
    """A stage-one list in the given order, scores falling."""
    return [(i, 0.9 - 0.01 * n) for n, i in enumerate(ids)]


def test_a_missing_or_wrong_attribute_does_not_hide_the_right_product(trained) -> None:
    export, _, facts, _, result = trained
    # "this red shirt, but blue": the right product is blue-shirt-0, but its catalog says nothing of blue
    # and (wrongly) calls it red.
    broken = GraphExport(images=export.images, attributes=export.attributes,
                         edges=[e for e in export.edges if not (e.src == "blue-shirt-0" and e.dst == "blue")]
                         + [TypedEdge("HAS_ATTRIBUTE:catalog", "Image", "blue-shirt-0", "Attribute", "red")])
    stage = SecondStage(result.ranker, FactTable.from_export(broken, ("catalog",)), ("catalog",))
    ids = ["blue-shirt-0", "green-shirt-0", "black-dress-0", "blue-shirt-1", "blue-dress-1", "red-shoe-0"]
    out = stage.rerank("red-shirt-0", _hits(stage, ids), added=["blue"], removed=["red"])
    order = [i for i, _ in out.hits]
    assert sorted(order) == sorted(ids)  # soft: every result is still there
    assert order.index("blue-shirt-0") < order.index("black-dress-0")  # above what is further and lacks more
    assert order.index("blue-shirt-1") < order.index("blue-shirt-0")  # the facts do count
    reasons = " | ".join(str(r) for r in out.reasons[order.index("blue-shirt-0")])
    assert "does not have 'blue', which the query adds" in reasons and "still has 'red'" in reasons


def test_without_attribute_facts_it_keeps_the_embedding_ranking(trained) -> None:
    export, _, _, _, result = trained
    bare = GraphExport(images=export.images, attributes=export.attributes, edges=[])
    stage = SecondStage(result.ranker, FactTable.from_export(bare, ("catalog",)), ("catalog",))
    ids = ["green-shirt-0", "blue-shirt-0", "black-dress-0", "blue-shirt-1"]
    hits = _hits(stage, ids)
    out = stage.rerank("red-shirt-0", hits, added=["blue"], removed=["red"])
    assert out.hits == hits and not out.reranked
    assert all("embedding similarity alone" in str(r[0]) for r in out.reasons)
    # Facts that no result differs in decide nothing either: the query names attributes nobody has.
    full = SecondStage(result.ranker, FactTable.from_export(export, ("catalog",)), ("catalog",))
    assert full.rerank("red-shirt-0", hits, added=["nonexistent"]).hits != hits  # kept-attribute facts differ
    same = ["blue-shirt-0", "blue-shirt-1"]
    assert full.rerank("red-shirt-0", _hits(full, same), added=["blue"]).hits == _hits(full, same)


def test_reasons_are_the_facts_that_ordered_the_results(trained) -> None:
    export, _, facts, _, result = trained
    stage = SecondStage(result.ranker, facts, ("catalog",))
    ids = ["green-shirt-0", "blue-dress-0", "blue-shirt-0", "red-shirt-1", "black-shoe-0", "blue-shirt-1"]
    out = stage.rerank("red-shirt-0", _hits(stage, ids), added=["blue"], removed=["red"])
    totals = [sum(r.weight for r in reasons) for reasons in out.reasons]
    scores = [s for _, s in out.hits]
    mean = float(np.mean(scores))
    for total, score, reasons in zip(totals, scores, out.reasons, strict=True):
        assert total == pytest.approx(score - mean, abs=0.005 * (len(reasons) + 8))
    assert totals == sorted(totals, reverse=True)  # the order is the order of the reasons' sums
    best = " | ".join(r.fact for r in out.reasons[0])
    assert out.hits[0][0].startswith("blue-shirt") and "has 'blue'" in best and "(catalog)" in best


def test_it_reads_any_attribute_source_and_says_which(trained) -> None:
    export, _, _, _, result = trained
    # The same catalog said by a classifier (with its confidence) and by users' tags instead.
    predicted = GraphExport(images=export.images, attributes=export.attributes, edges=[
        dataclasses.replace(e, relation="HAS_ATTRIBUTE:predicted", confidence=0.7) if e.relation.startswith(
            "HAS_ATTRIBUTE") else e for e in export.edges])
    tagged = GraphExport(images=export.images, attributes=export.attributes, edges=[
        dataclasses.replace(e, relation="USER_TAGGED") if e.relation.startswith("HAS_ATTRIBUTE") else e
        for e in export.edges])
    ids = ["green-shirt-0", "blue-dress-0", "blue-shirt-0", "black-shoe-0"]
    for source, graph, word in (("predicted", predicted, "confidence 0.70"), ("catalog", tagged, "tagged by a user")):
        stage = SecondStage(result.ranker, FactTable.from_export(graph, (source,)), (source,))
        out = stage.rerank("red-shirt-0", _hits(stage, ids), added=["blue"], removed=["red"])
        assert out.hits[0][0] == "blue-shirt-0", source
        assert any(word in r.fact for r in out.reasons[0]), [str(r) for r in out.reasons[0]]


def test_a_ranker_saves_and_loads_with_its_config(trained, tmp_path) -> None:
    ranker = trained[4].ranker
    ranker.save(tmp_path / "ranker.json")
    back = LinearRanker.load(tmp_path / "ranker.json")
    assert back.config == ranker.config and back.names == ranker.names
    np.testing.assert_allclose(back.weights, ranker.weights)
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="other.json"):
        LinearRanker.load(tmp_path / "other.json")


def test_a_new_image_without_facts_still_gets_ranked(trained) -> None:
    export, _, _, _, result = trained
    grown = GraphExport(images=[*export.images, ImageRow("new", "", "new", "test", "x")],
                        attributes=export.attributes, edges=export.edges)
    stage = SecondStage(result.ranker, FactTable.from_export(grown, ("catalog",)), ("catalog",))
    ids = ["new", "green-shirt-0", "blue-shirt-0", "unknown-to-the-table"]
    out = stage.rerank("red-shirt-0", _hits(stage, ids), added=["blue"], removed=["red"])
    assert sorted(i for i, _ in out.hits) == sorted(ids) and out.hits[0][0] == "blue-shirt-0"


def test_training_lists_can_be_capped_per_product_group() -> None:
    import torch

    from gnn.data.graph import QuerySet
    from gnn.ranking.train import sample_lists

    groups = ["big"] * 50 + ["small"] * 3 + ["lost"] * 2
    target = torch.tensor([1] * 53 + [-1, -1])  # the "lost" group's targets are unknown
    qs = QuerySet([f"q{i}" for i in range(55)], torch.arange(55), torch.zeros(55, dtype=torch.long), target, groups)
    natural = sample_lists(qs, limit=1000)
    assert len(natural) == 53 and natural.groups.count("big") == 50
    capped = sample_lists(qs, limit=1000, per_group=5, seed=0)
    assert capped.groups.count("big") == 5 and capped.groups.count("small") == 3 and "lost" not in capped.groups
    assert sample_lists(qs, limit=4, per_group=5).ids == sample_lists(qs, limit=4, per_group=5).ids  # seeded
    assert len(sample_lists(qs, limit=4, per_group=5)) == 4
