"""graphdb.interactions and graphdb.explain against the real server.

Every write is counted exactly: by relationship type, by key (no duplicates), and as whole-graph node
and relationship totals before and after the calls that must change nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest

pytest.importorskip("neo4j")

from neo4j.exceptions import Neo4jError  # noqa: E402

from graphdb.explain import Explanation, explain  # noqa: E402
from graphdb.export import export_base, update_base  # noqa: E402
from graphdb.ingest import ingest_images, ingest_queries  # noqa: E402
from graphdb.interactions import (  # noqa: E402
    LikeResult,
    TagResult,
    UnknownNodeError,
    add_attribute,
    changed_nodes,
    changes_since,
    like,
    merge_attributes,
    remove_interactions,
    remove_tag,
    store_query,
    stored_query,
    tag_image,
)
from readers.captions import CaptionRoles  # noqa: E402
from readers.graph_records import GraphExport  # noqa: E402
from readers.records import AttributeValue, ImageRecord, QueryRecord  # noqa: E402
from tests.helpers import counts, scalar  # noqa: E402

pytestmark = pytest.mark.neo4j

COLOURS = ("red", "blue")


def image(n: int, colour: str | None = None, extra: tuple[AttributeValue, ...] = ()) -> ImageRecord:
    colour = colour or COLOURS[n % 2]
    attrs = (AttributeValue("colour", colour), AttributeValue("article_type", "tshirts"),
             AttributeValue("gender", "men"), *extra)
    return ImageRecord(f"i{n}", f"Men {colour.title()} Tshirt {n}", f"/img/i{n}.jpg", "train", "g",
                       attrs, source_line=n + 2)


def load(driver, n: int = 10, extra: dict[int, tuple[AttributeValue, ...]] | None = None) -> None:
    extra = extra or {}
    ingest_images(driver, [image(k, extra=extra.get(k, ())) for k in range(n)], "/data/products.csv")


def by_type(driver) -> Counter:
    records, _, _ = driver.execute_query("MATCH ()-[r]->() RETURN type(r) AS t, count(r) AS c")
    return Counter({r["t"]: r["c"] for r in records})


def edges(driver, rel_type: str) -> list[tuple]:
    """(src, dst, who) of every edge of a type, repeats kept (so duplicates show)."""
    assert rel_type in {"USER_TAGGED", "LIKED_FOR", "LIKED_FROM"}  # fixed, never user input
    records, _, _ = driver.execute_query(
        f"MATCH (s)-[r:{rel_type}]->(d) RETURN s.id AS s, coalesce(d.id, d.name) AS d, r.who AS w"
    )
    return sorted((r["s"], r["d"], r["w"]) for r in records)


# ------------------------------------------------------------------------------------ end to end


def test_store_query_like_and_tag_end_to_end(empty_graph):
    load(empty_graph)
    before = by_type(empty_graph)
    roles = CaptionRoles(added=("blue",), removed=("red",), mentioned=("Cotton",))
    q = store_query(empty_graph, "i0", "make it blue instead of red, cotton", roles, who="ann")
    assert q.startswith("q-") and len(q) == 34
    rec = empty_graph.execute_query(
        "MATCH (c:Caption {id: $id})-[m:MODIFIES]->(i:Image) RETURN c.text AS text, c.split AS split, "
        "i.id AS cand, m.created_at IS NOT NULL AS stamped, c.updated_at IS NOT NULL AS updated, "
        "[(c)-[x:MENTIONS]->(a) | [a.name, x.role, x.created_at IS NOT NULL]] AS mentions",
        id=q,
    ).records[0]
    assert (rec["text"], rec["split"], rec["cand"], rec["stamped"], rec["updated"]) == (
        "make it blue instead of red, cotton", "query", "i0", True, True)
    assert sorted(rec["mentions"]) == [["blue", "added", True], ["cotton", "mentioned", True],
                                       ["red", "removed", True]]
    assert scalar(empty_graph, "MATCH (a:Attribute {name: 'cotton'}) RETURN a.kind") == "unknown"

    r = like(empty_graph, q, ["i3", "i1"], who="ann", ranks={"i3": 4, "i1": 2})
    assert r == LikeResult({"LIKED_FOR": 2, "LIKED_FROM": 2}, "i0")  # one edge per image and kind: a set
    assert like(empty_graph, q, ["i1", "i3", "i1"], who="ann").created == 0  # repeated: nothing new
    assert like(empty_graph, q, ["i1", "i3"], who="bo").counts == {"LIKED_FOR": 2, "LIKED_FROM": 2}
    # The candidate itself liked: linked to the caption (and so with the others), never LIKED_FROM itself.
    assert like(empty_graph, q, ["i0", "i1"], who="ann").counts == {"LIKED_FOR": 1, "LIKED_FROM": 0}
    assert by_type(empty_graph)["LIKED_WITH"] == 0  # image-image edges are derived, never stored
    # ann's set for q is {i0, i1, i3}, bo's {i1, i3}: each pair liked together, once per person.
    liked_with = sorted((e.src, e.dst) for e in export_base(empty_graph).edges if e.relation == "LIKED_WITH")
    assert liked_with == [("i0", "i1"), ("i0", "i3"), ("i1", "i3"), ("i1", "i3")]
    assert edges(empty_graph, "LIKED_FROM") == [("i1", "i0", "ann"), ("i1", "i0", "bo"), ("i3", "i0", "ann"),
                                                ("i3", "i0", "bo")]
    assert scalar(empty_graph, "MATCH ()-[r:LIKED_FOR|LIKED_FROM]->() "
                               "WHERE r.created_at IS NULL OR r.at IS NULL RETURN count(r)") == 0
    assert scalar(empty_graph, "MATCH ()-[r:LIKED_FROM]->() WHERE r.query <> $q RETURN count(r)", q=q) == 0
    # The rank each had when liked stays with the first like; the stored query lists them in liking order.
    ranks = empty_graph.execute_query("MATCH (i:Image)-[r:LIKED_FOR {who: 'ann'}]->() RETURN i.id AS i, r.rank AS r")
    assert {r["i"]: r["r"] for r in ranks.records} == {"i1": 2, "i3": 4, "i0": None}
    assert stored_query(empty_graph, q).liked_in_order == ("i1", "i3", "i0")

    assert tag_image(empty_graph, "i1", "Long  Sleeves", who="bo", phrase="that shirt has long sleeves") \
        == TagResult(created_attribute=True, created_edge=True)
    assert tag_image(empty_graph, "i1", "long sleeves", who="bo") == TagResult(False, False)
    assert tag_image(empty_graph, "i1", "long sleeves", who="cy", kind="part") == TagResult(False, True)
    tag = empty_graph.execute_query(
        "MATCH (:Image {id: 'i1'})-[t:USER_TAGGED {who: 'bo'}]->(a:Attribute) "
        "RETURN a.name AS name, a.kind AS kind, a.kinds AS kinds, t.phrase AS phrase, t.source AS source, "
        "t.created_at IS NOT NULL AS stamped"
    ).records[0]
    assert (tag["name"], tag["kind"], sorted(tag["kinds"]), tag["phrase"], tag["source"], tag["stamped"]) == (
        "long sleeves", "user", ["part", "user"], "that shirt has long sleeves", "user", True)

    after = by_type(empty_graph)
    assert after - before == Counter({"MODIFIES": 1, "MENTIONS": 3, "LIKED_FOR": 5, "LIKED_FROM": 4,
                                      "USER_TAGGED": 2})


def test_eight_concurrent_writers_lose_no_edge(empty_graph):
    load(empty_graph, n=12)
    q = store_query(empty_graph, "i0", "in blue", CaptionRoles(added=("blue",)), who="setup")
    expected: dict[str, set[tuple]] = {t: set() for t in ("LIKED_FOR", "LIKED_FROM", "USER_TAGGED")}
    liked_sets: dict[str, set[str]] = {}
    plans = []
    for t in range(8):
        who = f"u{t % 3}"  # shared users: the same edge MERGEd by several threads at once
        steps = []
        for k in range(6):
            liked = sorted({f"i{(t + k + j) % 12}" for j in (0, 1, 3)})  # overlapping windows of images
            name = f"attr-{(t + k) % 4}"  # attributes created concurrently by several threads
            steps.append((liked, f"i{(t * 5 + k) % 12}", name))
            liked_sets.setdefault(who, set()).update(liked)
            expected["LIKED_FOR"] |= {(i, q, who) for i in liked}
            expected["LIKED_FROM"] |= {(i, "i0", who) for i in liked if i != "i0"}
            expected["USER_TAGGED"].add((f"i{(t * 5 + k) % 12}", name, who))
        plans.append((who, steps))

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(who: str, steps: list) -> None:
        try:
            barrier.wait()
            for liked, tagged, name in steps:
                like(empty_graph, q, liked, who=who)  # each call: its own session and transaction
                tag_image(empty_graph, tagged, name, who=who, phrase=f"it has {name}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=plan) for plan in plans]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=180)
    assert not errors, errors
    for rel_type, want in expected.items():
        got = edges(empty_graph, rel_type)
        assert len(got) == len(set(got)), f"duplicate {rel_type} edges"
        assert set(got) == want, rel_type
    # Liked together: every pair of one person's set for the query, once each.
    derived = Counter((e.src, e.dst) for e in export_base(empty_graph).edges if e.relation == "LIKED_WITH")
    want = Counter((a, b) for images in liked_sets.values() for a in images for b in images if a < b)
    assert derived == want
    assert scalar(empty_graph, "MATCH (a:Attribute) WHERE a.name STARTS WITH 'attr-' "
                               "RETURN count(a)") == 4


def test_cypher_looking_text_is_stored_verbatim_and_changes_nothing_else(empty_graph):
    load(empty_graph, n=3)
    evil = "'}) DETACH DELETE n //"
    nodes, rels = counts(empty_graph)
    q = store_query(empty_graph, "i0", evil, CaptionRoles(), who=evil)
    assert scalar(empty_graph, "MATCH (c:Caption {id: $id}) RETURN c.text", id=q) == evil
    assert counts(empty_graph) == (nodes + 1, rels + 1)  # the caption and its MODIFIES
    assert tag_image(empty_graph, "i1", "x'}) DETACH DELETE n //", who=evil, phrase=evil) == TagResult(True, True)
    assert counts(empty_graph) == (nodes + 2, rels + 2)
    assert scalar(empty_graph, "MATCH (:Image {id: 'i1'})-[t:USER_TAGGED]->(a) RETURN a.name + '|' + t.who") \
        == "x'}) detach delete n //|" + evil
    like(empty_graph, q, ["i1", "i2"], who=evil)
    assert counts(empty_graph) == (nodes + 2, rels + 2 + 2 + 2)  # LIKED_FOR and LIKED_FROM per image


def test_unknown_ids_raise_clear_errors_and_write_nothing(empty_graph):
    load(empty_graph, n=3)
    q = store_query(empty_graph, "i0", "in blue", CaptionRoles(added=("blue",)))
    before = counts(empty_graph)
    with pytest.raises(UnknownNodeError, match="unknown image id 'nope'"):
        store_query(empty_graph, "nope", "in green", CaptionRoles(added=("green",)))
    with pytest.raises(UnknownNodeError, match="unknown query id 'q-missing'"):
        like(empty_graph, "q-missing", ["i1"])
    with pytest.raises(UnknownNodeError, match="unknown image ids 'gone', 'x9'"):
        like(empty_graph, q, ["i1", "x9", "i2", "gone"])  # known ones are not liked either
    with pytest.raises(UnknownNodeError, match="'x9'"):
        tag_image(empty_graph, "x9", "long sleeves")
    with pytest.raises(UnknownNodeError, match="'x9'"):
        add_attribute(empty_graph, "x9", "long sleeves", "part", "cur")
    with pytest.raises(UnknownNodeError, match="'x9'"):
        remove_tag(empty_graph, "x9", "red")
    with pytest.raises(UnknownNodeError, match="'nothing here'"):
        merge_attributes(empty_graph, "red", "nothing here")
    with pytest.raises(UnknownNodeError, match="'q-missing'"):
        explain(empty_graph, "q-missing", "i1")
    with pytest.raises(UnknownNodeError, match="'x9'"):
        explain(empty_graph, q, "x9")
    with pytest.raises(ValueError):
        like(empty_graph, q, [])
    with pytest.raises(ValueError):
        tag_image(empty_graph, "i1", "   ")
    assert counts(empty_graph) == before


# ------------------------------------------------------------------------------------ curators


def test_add_attribute_and_remove_tag_scripts(empty_graph):
    load(empty_graph, n=3)
    before = counts(empty_graph)
    assert add_attribute(empty_graph, "i1", "Halter  Neck", "part", "cur") == TagResult(True, True)
    assert add_attribute(empty_graph, "i1", "halter neck", "part", "cur") == TagResult(False, False)
    assert counts(empty_graph) == (before[0] + 1, before[1] + 1)
    rec = empty_graph.execute_query(
        "MATCH (:Image {id: 'i1'})-[t:USER_TAGGED]->(a:Attribute {name: 'halter neck'}) "
        "RETURN a.kind AS kind, t.source AS source, t.who AS who, t.created_at IS NOT NULL AS stamped"
    ).records[0]
    assert (rec["kind"], rec["source"], rec["who"], rec["stamped"]) == ("part", "curator", "cur", True)
    # An existing attribute learns a new kind.
    assert add_attribute(empty_graph, "i0", "red", "Colour Family", "cur") == TagResult(False, True)
    assert sorted(scalar(empty_graph, "MATCH (a:Attribute {name: 'red'}) RETURN a.kinds")) == [
        "colour", "colour_family"]

    assert remove_tag(empty_graph, "i1", "halter neck") == 1
    assert remove_tag(empty_graph, "i1", "halter neck") == 0
    # i0 has red from the catalog and from the curator: remove by source, then the rest.
    tag_image(empty_graph, "i0", "red", who="ann")
    assert remove_tag(empty_graph, "i0", "red", source="user") == 1
    assert remove_tag(empty_graph, "i0", "red", source="curator") == 1
    assert scalar(empty_graph, "MATCH (:Image {id: 'i0'})-[r]->(:Attribute {name: 'red'}) "
                               "RETURN collect(type(r) + ':' + r.source)") == ["HAS_ATTRIBUTE:catalog"]
    assert remove_tag(empty_graph, "i0", "red") == 1
    assert scalar(empty_graph, "MATCH (:Image {id: 'i0'})-->(a:Attribute {name: 'red'}) RETURN count(a)") == 0


def test_merge_attributes_moves_every_edge_without_duplicates(empty_graph):
    part = AttributeValue("part", "long sleeve")
    dashed = AttributeValue("part", "long-sleeve")
    load(empty_graph, n=4, extra={0: (part, dashed), 1: (dashed,), 2: (part,)})
    ingest_queries(empty_graph, [QueryRecord("c1", "i3", "i0", "with long sleeve, long-sleeve", added=(
        "long sleeve", "long-sleeve"), mentioned=("red",))], "/data/q.json")
    tag_image(empty_graph, "i2", "long-sleeve", who="bo", phrase="it has long-sleeve")
    tag_image(empty_graph, "i2", "long sleeve", who="bo")
    tag_image(empty_graph, "i3", "long-sleeve", who="cy")
    since = datetime.now(UTC)
    nodes, rels = counts(empty_graph)

    moved = merge_attributes(empty_graph, "long sleeve", "long-sleeve")
    assert moved == {"HAS_ATTRIBUTE": 2, "USER_TAGGED": 2, "MENTIONS": 1}
    # Duplicates folded: i0's catalog edge, i2's tag by bo, the caption's 'added' mention.
    assert counts(empty_graph) == (nodes - 1, rels - 3)
    assert scalar(empty_graph, "MATCH (a:Attribute {name: 'long-sleeve'}) RETURN count(a)") == 0
    rows = empty_graph.execute_query(
        "MATCH (s)-[r]->(:Attribute {name: 'long sleeve'}) "
        "RETURN s.id AS s, type(r) AS t, coalesce(r.source, '') + coalesce(r.who, '') + coalesce(r.role, '') AS k"
    ).records
    assert sorted((r["s"], r["t"], r["k"]) for r in rows) == [
        ("c1", "MENTIONS", "added"), ("i0", "HAS_ATTRIBUTE", "catalog"), ("i1", "HAS_ATTRIBUTE", "catalog"),
        ("i2", "HAS_ATTRIBUTE", "catalog"), ("i2", "USER_TAGGED", "userbo"), ("i3", "USER_TAGGED", "usercy"),
    ]
    changed = changes_since(empty_graph, since)
    assert set(changed["nodes"]["Image"]) == {"i0", "i1", "i2", "i3"}
    assert changed["nodes"]["Caption"] == ["c1"] and changed["nodes"]["Attribute"] == ["long sleeve"]
    assert {(e["src"], e["dst"]) for e in changed["relationships"]["HAS_ATTRIBUTE"]} == {
        ("i1", "long sleeve")}
    with pytest.raises(ValueError):
        merge_attributes(empty_graph, "red", " RED ")


def test_merge_attributes_refuses_unknown_relationship_types(empty_graph):
    load(empty_graph, n=2)
    empty_graph.execute_query("MATCH (i:Image {id: 'i0'}) CREATE (i)-[:SEEN_IN]->(:Attribute {name: 'odd'})")
    before = (counts(empty_graph), by_type(empty_graph))
    with pytest.raises(Neo4jError):
        merge_attributes(empty_graph, "red", "odd")  # DELETE, not DETACH DELETE: nothing silently lost
    assert (counts(empty_graph), by_type(empty_graph)) == before


def test_changes_since(empty_graph):
    load(empty_graph, n=4)
    since = datetime.now(UTC)
    assert changes_since(empty_graph, since)["relationships"] == {}
    q = store_query(empty_graph, "i0", "in blue", CaptionRoles(added=("blue",)))
    like(empty_graph, q, ["i1", "i2"], who="ann")
    tag_image(empty_graph, "i3", "collar", who="bo")
    changed = changes_since(empty_graph, since.isoformat())
    assert set(changed["nodes"]["Image"]) == {"i0", "i1", "i2", "i3"}
    assert changed["nodes"]["Caption"] == [q]
    assert changed["nodes"]["Attribute"] == ["collar"]
    assert {t: len(v) for t, v in changed["relationships"].items()} == {
        "MODIFIES": 1, "MENTIONS": 1, "LIKED_FOR": 2, "LIKED_FROM": 2, "USER_TAGGED": 1}
    later = changes_since(empty_graph, changed["until"])
    assert later["relationships"] == {} and later["nodes"] == {"Image": [], "Caption": [], "Attribute": []}


# ------------------------------------------------------------------------------------ explain


def _graph_items(value, nodes: set, rels: set) -> None:
    """Node ids/names and relationship types anywhere in a result value (paths, lists, nodes)."""
    from neo4j.graph import Node, Path

    if isinstance(value, Path):
        for n in value.nodes:
            _graph_items(n, nodes, rels)
        rels.update(r.type for r in value.relationships)
    elif isinstance(value, Node):
        nodes.add(value.get("id") or value.get("name"))
    elif isinstance(value, list):
        for v in value:
            _graph_items(v, nodes, rels)


def test_explain_facts_and_browser_query(empty_graph):
    load(empty_graph, n=6, extra={1: (AttributeValue("part", "collar"),), 0: (AttributeValue("part", "collar"),)})
    q = store_query(empty_graph, "i0", "I'd like it in blue, not red", CaptionRoles(added=("blue",),
                                                                                     removed=("red",)))
    ex = explain(empty_graph, q, "i1")
    assert "has 'blue', which the query adds" in ex.facts
    assert "does not have 'red', which the query removes" in ex.facts
    assert "shares 3 attributes with the candidate i0: 'collar', 'men', 'tshirts'" in ex.facts
    # The same query, a red result: the evidence against it is said too.
    assert "still has 'red', which the query removes" in explain(empty_graph, q, "i2").facts

    # Likes and tags join the explanation.
    q2 = store_query(empty_graph, "i4", "in blue please", CaptionRoles(added=("blue",)))
    like(empty_graph, q2, ["i1", "i3"], who="bo")
    like(empty_graph, q, ["i1"], who="ann")
    tag_image(empty_graph, "i1", "long sleeves", who="cy", phrase="that shirt has long sleeves")
    ex = explain(empty_graph, q, "i1")
    assert "was liked for this query by ann" in ex.facts
    assert f"is liked together with i3, which was liked for the similar query 'in blue please' ({q2}) (by bo)" \
        in ex.facts
    assert f"was liked for the similar query 'in blue please' ({q2}) by bo" in ex.facts
    assert "was tagged 'long sleeves' by cy (\"that shirt has long sleeves\")" in ex.facts

    # The Browser query runs with its parameters and draws exactly the evidence.
    assert ex.params == {"query_id": q, "result_id": "i1"}
    records, _, _ = empty_graph.execute_query(ex.cypher, ex.params)
    assert len(records) == 1
    nodes: set = set()
    rels: set = set()
    for value in records[0].values():
        _graph_items(value, nodes, rels)
    assert nodes == {q, q2, "i0", "i1", "i3", "blue", "red", "collar", "men", "tshirts", "long sleeves"}
    assert rels == {"MODIFIES", "MENTIONS", "HAS_ATTRIBUTE", "USER_TAGGED", "LIKED_FOR", "LIKED_FROM"}
    assert ex.browser_text().startswith(f":params {{query_id: '{q}', result_id: 'i1'}};\n")  # two statements

    bare = explain(empty_graph, q, "i5")  # blue, so it has the added attribute; nothing else
    assert bare.facts[0] == "has 'blue', which the query adds"
    assert Explanation([], "", {"who": "O'Neil", "n": None}).browser_params() == ":params {who: 'O\\'Neil', n: null}"


# ------------------------------------------------------------------------ keeping a base export current


def _comparable(export: GraphExport) -> tuple:
    """What a refresh reads from an export: nodes, captions, attributes and edges as multisets."""
    edges = Counter((e.relation, e.src_kind, e.src, e.dst_kind, e.dst) for e in export.edges)
    captions = sorted((c.id, c.text, c.candidate) for c in export.captions)
    return [i.id for i in export.images], captions, dict(export.attributes), edges


def test_update_base_after_each_kind_of_change_equals_a_fresh_export(empty_graph):
    load(empty_graph, 6)
    base = export_base(empty_graph)
    marker = changes_since(empty_graph, "2000-01-01T00:00:00+00:00")["until"]

    def current(since):
        nonlocal base
        changed = changed_nodes(empty_graph, since)
        updated = update_base(empty_graph, base, changed["Image"], changed["Caption"])
        assert updated is not None
        assert _comparable(updated) == _comparable(export_base(empty_graph))
        base = updated
        return changed["until"]

    roles = CaptionRoles(added=("blue",), removed=("red",))
    query = store_query(empty_graph, "i0", "make it blue", roles, who="ann")
    marker = current(marker)  # a query nobody liked is not part of the base
    like(empty_graph, query, ["i1", "i3"], who="ann")
    marker = current(marker)  # the liked query joins, with its MODIFIES and MENTIONS
    like(empty_graph, query, ["i1", "i3"], who="bob")  # a second person: the same edges again
    tag_image(empty_graph, "i2", "long sleeves", who="ann")
    tag_image(empty_graph, "i2", "long sleeves", who="bob")
    marker = current(marker)
    remove_tag(empty_graph, "i2", "long sleeves")
    add_attribute(empty_graph, "i4", "Long-Sleeves", "part", who="cur")
    marker = current(marker)
    merge_attributes(empty_graph, "blue", "red")  # every red edge moves; 'red' disappears
    marker = current(marker)
    assert "red" not in base.attributes
    before = by_type(empty_graph)
    assert remove_interactions(empty_graph, "ann") == {"relationships": 4, "queries": 1}
    removed = before - by_type(empty_graph)
    # ann's own likes, and with her query its MODIFIES, MENTIONS and bob's LIKED_FOR edges to it
    assert removed == Counter({"LIKED_FOR": 4, "LIKED_FROM": 2, "MODIFIES": 1, "MENTIONS": 2})
    marker = current(marker)  # and the base follows the removal
