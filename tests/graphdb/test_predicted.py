"""graphdb.predicted against a real server: counts per threshold, idempotence, replacement, atomicity.

The tiny graph is made with plain parameterised Cypher (no reader, no ingest), so these tests say only
what predicted.py does.
"""

from __future__ import annotations

import pytest

pytest.importorskip("neo4j")

from neo4j.exceptions import CypherSyntaxError  # noqa: E402

import graphdb.predicted as predicted  # noqa: E402
from graphdb.predicted import (  # noqa: E402
    PREDICTED,
    predicted_edge_counts,
    read_attribute_kinds,
    write_predictions,
)

pytestmark = pytest.mark.neo4j

ATTRIBUTES = {
    "black": ["colour"],
    "blue": ["colour"],
    "red": ["colour"],
    "dress": ["article_type"],
    "shirt": ["article_type"],
    "women": ["gender"],
    "watches": ["article_type", "sub_category"],
}

# image -> (name, kind, confidence): as gnn.attributes.AttributePredictor.predict gives them
PREDICTIONS = {
    "i1": [
        ("black", "colour", 0.92),
        ("dress", "article_type", 0.75),
        ("women", "gender", 0.55),
        ("blue", "colour", 0.05),
    ],
    "i2": [("shirt", "article_type", 0.98), ("red", "colour", 0.35), ("blue", "colour", 0.31)],
    "i3": [("watches", "article_type", 0.6), ("watches", "sub_category", 0.85), ("black", "colour", 0.15)],
}


@pytest.fixture
def graph(empty_graph):
    empty_graph.execute_query(
        "UNWIND $attrs AS a CREATE (:Attribute {name: a[0], kind: a[1][0], kinds: a[1]})",
        attrs=[[name, kinds] for name, kinds in ATTRIBUTES.items()],
    )
    empty_graph.execute_query(
        "UNWIND $images AS i CREATE (:Image {id: i[0], split: i[1]})",
        images=[["i1", "train"], ["i2", "val"], ["i3", "test"], ["i4", "test"]],
    )
    # Catalog edges, which predictions must never touch.
    empty_graph.execute_query(
        "UNWIND $edges AS e MATCH (i:Image {id: e[0]}), (a:Attribute {name: e[1]}) "
        "CREATE (i)-[:HAS_ATTRIBUTE {source: 'catalog', confidence: 1.0}]->(a)",
        edges=[["i1", "black"], ["i1", "dress"], ["i2", "blue"], ["i2", "shirt"], ["i3", "watches"]],
    )
    return empty_graph


def edges(driver, source: str = PREDICTED) -> dict[tuple[str, str], float]:
    records, _, _ = driver.execute_query(
        "MATCH (i:Image)-[r:HAS_ATTRIBUTE {source: $source}]->(a:Attribute) "
        "RETURN i.id AS i, a.name AS a, r.confidence AS c",
        source=source,
    )
    return {(r["i"], r["a"]): r["c"] for r in records}


def counts(driver) -> tuple[int, int]:
    records, _, _ = driver.execute_query(
        "CALL () { MATCH (n) RETURN count(n) AS nodes } CALL () { MATCH ()-[r]->() RETURN count(r) AS rels } "
        "RETURN nodes, rels"
    )
    return records[0]["nodes"], records[0]["rels"]


def updated_at(driver) -> dict[str, object]:
    records, _, _ = driver.execute_query("MATCH (i:Image) RETURN i.id AS id, i.updated_at AS t")
    return {r["id"]: r["t"] for r in records}


def expected(threshold: float) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for image, preds in PREDICTIONS.items():
        for name, _, c in preds:
            if c >= threshold:
                out[(image, name)] = max(c, out.get((image, name), 0.0))
    return out


def test_reads_attribute_kinds(graph) -> None:
    assert read_attribute_kinds(graph) == ATTRIBUTES


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_edges_above_the_threshold(graph, threshold: float) -> None:
    nodes_before, _ = counts(graph)
    report = write_predictions(graph, PREDICTIONS, threshold, model="v1")
    want = expected(threshold)
    assert edges(graph) == pytest.approx(want)
    assert report.created == report.edges == len(want)
    assert report.images == 3 and report.deleted == 0 and not report.missing_images
    assert counts(graph)[0] == nodes_before  # only MATCHes nodes
    assert len(edges(graph, "catalog")) == 5


def test_counts_per_threshold_and_one_edge_per_name(graph) -> None:
    write_predictions(graph, PREDICTIONS, 0.1, model="v1")
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    got = predicted_edge_counts(graph, thresholds)
    assert got == {t: len(expected(t)) for t in thresholds}
    assert list(got.values()) == sorted(got.values(), reverse=True)
    # "watches" is predicted by two kinds: one edge, at the higher confidence.
    assert edges(graph)[("i3", "watches")] == pytest.approx(0.85)
    records, _, _ = graph.execute_query(
        "MATCH (:Image {id: 'i3'})-[r:HAS_ATTRIBUTE {source: 'predicted'}]->(:Attribute {name: 'watches'}) "
        "RETURN count(r) AS n, collect(r.model) AS models"
    )
    assert records[0]["n"] == 1 and records[0]["models"] == ["v1"]


def test_idempotent(graph) -> None:
    first = write_predictions(graph, PREDICTIONS, 0.3, model="v1", batch_size=2)
    assert first.batches == 2 and first.images_changed == 3
    before, stamps = counts(graph), updated_at(graph)
    second = write_predictions(graph, PREDICTIONS, 0.3, model="v1", batch_size=2)
    assert (second.created, second.deleted, second.updated, second.images_changed) == (0, 0, 0, 0)
    assert second.unchanged == second.edges == first.edges
    assert counts(graph) == before
    assert updated_at(graph) == stamps  # nothing changed, so nothing is marked stale


def test_replaces_the_predicted_edges_of_the_images_written(graph) -> None:
    write_predictions(graph, PREDICTIONS, 0.3, model="v1")
    stamps = updated_at(graph)
    assert all(stamps[i] is not None for i in ("i1", "i2", "i3")) and stamps["i4"] is None
    new = {
        "i1": [("red", "colour", 0.8), ("dress", "article_type", 0.6)],  # black, women gone; dress re-scored
        "i2": [("shirt", "article_type", 0.98), ("red", "colour", 0.35), ("blue", "colour", 0.31)],  # same
        "i4": [],  # nothing above the threshold: no edges (it had none)
    }
    report = write_predictions(graph, new, 0.3, model="v1")
    assert (report.created, report.deleted, report.updated, report.unchanged) == (1, 2, 1, 3)
    assert report.images_changed == 1
    got = edges(graph)
    assert {k: v for k, v in got.items() if k[0] == "i1"} == pytest.approx(
        {("i1", "red"): 0.8, ("i1", "dress"): 0.6}
    )
    assert {k for k in got if k[0] == "i2"} == {("i2", "shirt"), ("i2", "red"), ("i2", "blue")}
    assert ("i3", "watches") in got  # i3 was not in the call: untouched
    after = updated_at(graph)
    assert after["i1"] > stamps["i1"]
    assert after["i2"] == stamps["i2"] and after["i3"] == stamps["i3"]
    assert len(edges(graph, "catalog")) == 5 and edges(graph, "catalog")[("i1", "black")] == 1.0
    # An image whose predictions all fall below the threshold loses its predicted edges.
    write_predictions(graph, {"i1": [("red", "colour", 0.2)]}, 0.3)
    assert not [k for k in edges(graph) if k[0] == "i1"]
    # A new model version with the same confidences updates the edges in place.
    report = write_predictions(graph, {"i2": new["i2"]}, 0.3, model="v2")
    assert (report.created, report.deleted, report.updated) == (0, 0, 3)
    records, _, _ = graph.execute_query(
        "MATCH (:Image {id: 'i2'})-[r:HAS_ATTRIBUTE {source: 'predicted'}]->() "
        "RETURN collect(DISTINCT r.model) AS m"
    )
    assert records[0]["m"] == ["v2"]


def test_unknown_names_and_images_are_skipped(graph) -> None:
    before = counts(graph)
    report = write_predictions(
        graph,
        {"i1": [("black", "colour", 0.9), ("mauve", "colour", 0.8)], "nope": [("red", "colour", 0.9)]},
        0.5,
    )
    assert report.unknown_attributes == {"mauve"} and report.missing_images == ["nope"]
    assert report.created == 1 and report.images == 1
    assert counts(graph) == (before[0], before[1] + 1)  # no node created for "mauve" or "nope"


def test_duplicate_predicted_edges_are_folded(graph) -> None:
    graph.execute_query(
        "MATCH (i:Image {id: 'i1'}), (a:Attribute {name: 'black'}) "
        "CREATE (i)-[:HAS_ATTRIBUTE {source: 'predicted', confidence: 0.9, model: 'v0'}]->(a), "
        "(i)-[:HAS_ATTRIBUTE {source: 'predicted', confidence: 0.9, model: 'v0'}]->(a)"
    )
    write_predictions(graph, {"i1": [("black", "colour", 0.9)]}, 0.5, model="v1")
    records, _, _ = graph.execute_query(
        "MATCH (:Image {id: 'i1'})-[r:HAS_ATTRIBUTE {source: 'predicted'}]->() RETURN count(r) AS n"
    )
    assert records[0]["n"] == 1


def test_a_failed_batch_keeps_the_old_edges(graph, monkeypatch: pytest.MonkeyPatch) -> None:
    write_predictions(graph, PREDICTIONS, 0.3, model="v1")
    before, old = counts(graph), edges(graph)
    # The last statement of the batch fails, after its deletes and creates ran in the same transaction.
    monkeypatch.setattr(predicted, "_TOUCH", "THIS IS NOT CYPHER")
    with pytest.raises(CypherSyntaxError):
        write_predictions(graph, {"i1": [("red", "colour", 0.99)], "i2": []}, 0.3, model="v1")
    assert edges(graph) == old
    assert counts(graph) == before


def test_rejects_a_threshold_outside_0_1(graph) -> None:
    with pytest.raises(ValueError):
        write_predictions(graph, PREDICTIONS, 1.5)


def test_exports_weigh_predicted_edges_by_their_confidence(graph) -> None:
    """What the R-GCN reads: a predicted edge's weight is its confidence, every other edge weighs 1, in a
    full export, a base export and a base brought up to date after the predictions changed."""
    from graphdb.export import export_base, export_graph, update_base

    write_predictions(graph, PREDICTIONS, threshold=0.1)

    def weights(export) -> dict[tuple[str, str, str], float]:
        return {(e.relation, e.src, e.dst): e.weight for e in export.edges if e.relation.startswith("HAS_ATTRIBUTE")}

    expected = {("HAS_ATTRIBUTE:predicted", i, name): c for (i, name), c in edges(graph).items()}
    expected |= {("HAS_ATTRIBUTE:catalog", i, name): 1.0 for (i, name) in edges(graph, "catalog")}
    assert expected[("HAS_ATTRIBUTE:predicted", "i2", "red")] == pytest.approx(0.35)
    assert weights(export_graph(graph)) == pytest.approx(expected)
    base = export_base(graph)
    assert weights(base) == pytest.approx(expected)
    write_predictions(graph, {"i2": [("red", "colour", 0.6), ("shirt", "article_type", 0.9)]}, threshold=0.1)
    updated = update_base(graph, base, ["i2"], [])
    assert updated is not None
    now = weights(updated)
    assert now[("HAS_ATTRIBUTE:predicted", "i2", "red")] == pytest.approx(0.6)
    assert ("HAS_ATTRIBUTE:predicted", "i2", "blue") not in now
    assert now[("HAS_ATTRIBUTE:predicted", "i1", "black")] == pytest.approx(0.92)  # untouched images kept
    assert now == pytest.approx(weights(export_base(graph)))
