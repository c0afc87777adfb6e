"""gnn.ranking.facts: facts read from an export whatever their source, and the columns they give a list."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.ranking.facts import OTHER_KIND, FactTable, QueryFacts, feature_names, kept_attributes, list_features
from readers.graph_records import GraphExport, ImageRow, TypedEdge


def _export() -> GraphExport:
    export = GraphExport(images=[ImageRow(i, "", i, "test", "g") for i in ("a", "b", "c", "d")])
    export.attributes = {"red": "colour", "blue": "colour", "shirt": "article_type", "men": "gender",
                         "summer": "season"}
    edge = lambda rel, img, attr, conf=None: TypedEdge(rel, "Image", img, "Attribute", attr, confidence=conf)  # noqa: E731
    export.edges = [
        edge("HAS_ATTRIBUTE:catalog", "a", "red"), edge("HAS_ATTRIBUTE:catalog", "a", "shirt"),
        edge("HAS_ATTRIBUTE:catalog", "a", "men"),
        edge("HAS_ATTRIBUTE:catalog", "b", "blue"), edge("HAS_ATTRIBUTE:catalog", "b", "shirt"),
        edge("HAS_ATTRIBUTE:catalog", "b", "men"), edge("HAS_ATTRIBUTE:catalog", "b", "summer"),
        edge("HAS_ATTRIBUTE:predicted", "c", "blue", 0.8), edge("HAS_ATTRIBUTE:predicted", "c", "shirt", 0.6),
        edge("HAS_ATTRIBUTE:predicted", "b", "blue", 0.3),  # weaker than b's catalog fact: the catalog's counts
        edge("USER_TAGGED", "d", "blue"),
        TypedEdge("LIKED_FROM", "Image", "b", "Image", "a"), TypedEdge("LIKED_WITH", "Image", "b", "Image", "d"),
    ]
    return export


def test_facts_keep_each_source_with_its_strength_and_the_strongest_wins() -> None:
    facts = FactTable.from_export(_export(), ("catalog", "predicted"))
    rows = np.array([facts.image_row[i] for i in "abcd"])
    strength, source = facts.lookup(rows, np.array([facts.attribute_row["blue"]]))
    np.testing.assert_allclose(strength[:, 0], [0.0, 1.0, 0.8, 1.0])
    assert [int(s) for s in source[:, 0]] == [-1, 0, 1, 4]  # none, catalog, predicted, a user's tag
    assert len(FactTable.from_export(_export(), ("catalog",), tags=False)) == 7
    only_predicted = FactTable.from_export(_export(), ("predicted",), tags=False)
    assert len(only_predicted) == 3 and not only_predicted.lookup(rows[:1], np.array([0]))[0].any()
    assert facts.liked_from_candidate(facts.image_row["a"]) == {facts.image_row["b"]}
    assert facts.liked_together(facts.image_row["d"]) == {facts.image_row["b"]}


def test_a_fact_table_saves_and_loads_whole(tmp_path) -> None:
    facts = FactTable.from_export(_export(), ("catalog", "predicted"))
    facts.save(tmp_path / "facts.npz")
    back = FactTable.load(tmp_path / "facts.npz")
    assert back.image_ids == facts.image_ids and back.attribute_kinds == facts.attribute_kinds
    np.testing.assert_array_equal(back.keys, facts.keys)
    np.testing.assert_array_equal(back.strength, facts.strength)
    np.testing.assert_array_equal(back.liked_with, facts.liked_with)
    (tmp_path / "bad.npz").write_bytes(b"not a table")
    with pytest.raises(ValueError):
        FactTable.load(tmp_path / "bad.npz")


def test_the_columns_state_each_fact_of_a_result_against_the_query() -> None:
    facts = FactTable.from_export(_export(), ("catalog", "predicted"))
    kinds = ["article_type", "colour", "gender", OTHER_KIND]  # season is pooled into "other"
    names = feature_names(kinds)
    # "this red shirt (a), but blue": results b (blue shirt, men, summer), c (predicted blue shirt), d (tagged blue)
    query = QueryFacts.of(facts, "a", added=["blue"], removed=["red"], mentioned=["nonexistent"])
    results = np.array([facts.image_row[i] for i in "bcd"] + [-1])  # and one image the table does not know
    x = list_features(facts, query, results, np.array([0.9, 0.8, 0.7, 0.6], np.float32), names, kinds).matrix
    col = {n: j for j, n in enumerate(names)}
    np.testing.assert_allclose(x[:, col["has_added"]], [1.0, 0.8, 1.0, 0.0])
    np.testing.assert_allclose(x[:, col["lacks_removed"]], [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(x[:, col["keeps:article_type"]], [1.0, 0.6, 0.0, 0.0])
    np.testing.assert_allclose(x[:, col["keeps:gender"]], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(x[:, col["other:other"]], [1.0, 0.0, 0.0, 0.0])  # b's season
    np.testing.assert_allclose(x[:, col["other:colour"]], [0.0, 0.0, 0.0, 0.0])  # blue is what was asked
    np.testing.assert_allclose(x[:, col["embedding_rank"]], -np.log1p(np.arange(4)))
    np.testing.assert_allclose(x[:, col["liked_from_candidate"]], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(x[:, col["liked_with_liked"]], [0.0, 0.0, 1.0, 0.0])  # d is liked with b
    # The whole filter at once: b has blue, lacks red, keeps shirt and men; c keeps men not at all; d no shirt.
    np.testing.assert_allclose(x[:, col["meets_all"]], [1.0, 0.0, 0.0, 0.0])
    # The candidate itself as a result still has what the query removes.
    again = list_features(facts, query, np.array([facts.image_row["a"]]), np.zeros(1, np.float32), names, kinds)
    assert again.matrix[0, col["lacks_removed"]] == 0.0 and again.matrix[0, col["other:colour"]] == 1.0
    assert again.matrix[0, col["meets_all"]] == 0.0


def test_meets_all_is_the_weakest_of_the_filter_facts() -> None:
    facts = FactTable.from_export(_export(), ("catalog", "predicted"))
    kinds = ["article_type", "colour", "gender", OTHER_KIND]
    names = feature_names(kinds)
    col = names.index("meets_all")
    # "this blue shirt (b), but no summer": c is a predicted blue (0.8) shirt (0.6), without men
    query = QueryFacts.of(facts, "b", added=["shirt"], removed=["summer"])
    results = np.array([facts.image_row[i] for i in "ca"])
    x = list_features(facts, query, results, np.zeros(2, np.float32), names, kinds).matrix
    np.testing.assert_allclose(x[:, col], [0.0, 0.0])  # c lacks men, a lacks blue: both miss a kept value
    query = QueryFacts.of(facts, "c", added=["blue"])  # c's own facts are predicted: only firm ones are kept
    x = list_features(facts, query, np.array([facts.image_row["b"]]), np.zeros(1, np.float32), names, kinds).matrix
    np.testing.assert_allclose(x[:, col], [1.0])  # b has blue and shirt (c's shirt at 0.6 counts)


def test_a_delta_gives_the_facts_a_whole_export_would() -> None:
    from readers.graph_records import BaseDelta

    sources = ("catalog", "predicted")
    before = _export()
    table = FactTable.from_export(before, sources)
    after = _export()
    after.attributes["striped"] = "pattern"  # a new attribute, tagged on "a"; "b"'s predicted edge removed
    after.edges = [e for e in after.edges if not (e.src == "b" and e.relation == "HAS_ATTRIBUTE:catalog"
                                                  and e.dst == "summer")]
    after.edges += [TypedEdge("USER_TAGGED", "Image", "a", "Attribute", "striped"),
                    TypedEdge("LIKED_WITH", "Image", "a", "Image", "c")]
    changed = ["a", "b"]
    delta = BaseDelta(changed, [], [e for e in after.edges if e.src_kind == "Image" and
                                    (e.src in changed or (e.dst_kind == "Image" and e.dst in changed))],
                      attributes=dict(after.attributes), image_count=4)
    got, want = table.with_delta(delta, sources), FactTable.from_export(after, sources)
    assert got.attribute_names == want.attribute_names and got.attribute_kinds == want.attribute_kinds
    np.testing.assert_array_equal(got.keys, want.keys)
    np.testing.assert_allclose(got.strength, want.strength)
    np.testing.assert_array_equal(got.source, want.source)
    np.testing.assert_array_equal(got.liked_from, want.liked_from)
    np.testing.assert_array_equal(got.liked_with, want.liked_with)
    assert len(table.attribute_names) == 5  # the table it came from is unchanged


def test_an_added_value_of_a_kind_with_one_value_replaces_the_candidates() -> None:
    facts = FactTable.from_export(_export(), ("catalog",))
    row = facts.attribute_row
    # "in blue" on the red shirt "a": red is replaced, as "replace red with blue" says; the shirt is kept.
    query = QueryFacts.of(facts, "a", added=["blue"], exclusive_kinds=("colour", "article_type"))
    assert query.added == [row["blue"]] and query.removed == [row["red"]]
    kept = {a for pairs in kept_attributes(facts, query, facts.kinds).values() for a, _ in pairs}
    assert row["red"] not in kept and row["shirt"] in kept
    # A kind a product can have several values of is not replaced.
    assert QueryFacts.of(facts, "a", added=["blue"], exclusive_kinds=()).removed == []


def test_looks_within_the_filter_alone_separates_no_results() -> None:
    """Image similarity among results that all pass the filter is no fact: stage one's order stands."""
    from gnn.config import RankerConfig
    from gnn.ranking.model import LinearRanker

    facts = FactTable.from_export(_export(), ("catalog",))
    kinds = ["article_type", "colour", "gender", OTHER_KIND]
    ranker = LinearRanker.for_kinds(RankerConfig(), kinds)
    ranker.weights[ranker.names.index("meets_all_looks")] = 5.0
    # "this red shirt (a), but blue", and one product twice: the same facts, two image similarities
    query = QueryFacts.of(facts, "a", added=["blue"], exclusive_kinds=("colour",))
    results = np.array([facts.image_row["b"]] * 2)
    f = ranker.features(facts, query, results, np.array([0.9, 0.8], np.float32), np.array([0.1, 0.9], np.float32))
    col = {n: j for j, n in enumerate(f.names)}
    np.testing.assert_allclose(f.matrix[:, col["meets_all"]], [1.0, 1.0])
    np.testing.assert_allclose(f.matrix[:, col["meets_all_looks"]], [0.1, 0.9])
    ranking = ranker.rank(f)
    assert not ranking.reranked and ranking.order.tolist() == [0, 1]


def _faceted(results: str, similarity: list[float] | None, sources: tuple[str, ...] = ("catalog", "predicted")
             ) -> tuple[np.ndarray, dict[str, int]]:
    """The columns of "this red shirt (a), but blue" (it wants blue, shirt, men) for ``results`` (image ids;
    "?" an image the table does not know), and the column index."""
    facts = FactTable.from_export(_export(), sources)
    kinds = ["article_type", "colour", "gender", OTHER_KIND]
    names = feature_names(kinds)
    query = QueryFacts.of(facts, "a", added=["blue"], exclusive_kinds=("colour",))
    rows = np.array([facts.image_row[i] if i != "?" else -1 for i in results])
    sim = None if similarity is None else np.array(similarity, np.float32)
    x = list_features(facts, query, rows, np.zeros(len(rows), np.float32), names, kinds, sim).matrix
    return x, {n: j for j, n in enumerate(names)}


def test_facet_jaccard_counts_what_is_missing_and_what_is_extra() -> None:
    x, col = _faceted("bcd?", [0.2, 0.9, 0.5, 0.1])
    # b: all three and summer (3/4); c: blue 0.8 and shirt 0.6 (1.4 / (3 + 1.4 - 1.4)); d: blue (1/3); unknown: 0
    np.testing.assert_allclose(x[:, col["facet_jaccard"]], [0.75, 1.4 / 3, 1 / 3, 0.0], rtol=1e-6)
    # The faceted filter's places: b, then c and d by their match, the unknown image last.
    np.testing.assert_allclose(x[:, col["facet_rank"]], -np.log1p([0, 1, 2, 3]), rtol=1e-6)
    # The look's places: c, d, b, the unknown image.
    np.testing.assert_allclose(x[:, col["look_rank"]], -np.log1p([2, 0, 1, 3]), rtol=1e-6)


def test_the_faceted_order_breaks_a_tie_of_matches_by_look() -> None:
    x, col = _faceted("bbb", [0.1, 0.9, 0.5], sources=("catalog",))  # one product three times: the same match
    np.testing.assert_allclose(x[:, col["facet_rank"]], -np.log1p([2, 0, 1]), rtol=1e-6)


def test_without_image_features_the_faceted_order_is_the_match_alone() -> None:
    x, col = _faceted("dcb", None)  # matches 1/3, 1.4/3, 3/4
    np.testing.assert_allclose(x[:, col["facet_rank"]], -np.log1p([2, 1, 0]), rtol=1e-6)
    np.testing.assert_allclose(x[:, col["look_rank"]], 0.0)  # no looks, no place by looks
