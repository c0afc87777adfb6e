"""graphdb.sessions, graphdb.browse, graphdb.curator and the explanation subgraph, against the real server."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("neo4j")

from graphdb.browse import attribute_counts, find_products, image_path, product  # noqa: E402
from graphdb.curator import add_attribute_to_images  # noqa: E402
from graphdb.explain import explain, explain_facts, explain_graph  # noqa: E402
from graphdb.ingest import ingest_images  # noqa: E402
from graphdb.interactions import UnknownNodeError, like, stored_query, tag_image  # noqa: E402
from graphdb.sessions import attribute_kinds, read_step, session_steps, store_step  # noqa: E402
from readers.captions import CaptionRoles  # noqa: E402
from readers.records import AttributeValue, ImageRecord  # noqa: E402
from tests.helpers import counts, scalar  # noqa: E402

pytestmark = pytest.mark.neo4j


def _load(driver, n: int = 8) -> None:
    colours = ("red", "blue", "black", "navy blue")
    records = [ImageRecord(f"i{k}", f"Men {colours[k % 4].title()} Tshirt {k}", f"/img/i{k}.jpg", "train", "g",
                           (AttributeValue("colour", colours[k % 4]), AttributeValue("article_type", "tshirts")),
                           source_line=k + 2) for k in range(n)]
    ingest_images(driver, records, "/data/products.csv")


def test_steps_are_numbered_follow_their_parent_and_keep_their_roles(empty_graph):
    _load(empty_graph)
    first = store_step(empty_graph, "i0", "in black", CaptionRoles(added=("black",)), who="ann")
    assert first.n == 1 and first.session_id.startswith("s-") and first.query_id.startswith("q-")
    second = store_step(empty_graph, "i2", "with long sleeves",
                        CaptionRoles(added=("black", "long sleeves")), who="ann",
                        session_id=first.session_id, parent_id=first.query_id)
    assert second.n == 2 and second.session_id == first.session_id
    # Back to step 1 and another change: step 3 follows step 1, step 2 stays in the history.
    third = store_step(empty_graph, "i4", "not red", CaptionRoles(added=("black",), removed=("red",)),
                       session_id=first.session_id, parent_id=first.query_id)

    steps = session_steps(empty_graph, first.session_id)
    assert [(s.n, s.query_id, s.parent) for s in steps] == [
        (1, first.query_id, None), (2, second.query_id, first.query_id), (3, third.query_id, first.query_id)]
    assert steps[1].roles == CaptionRoles(added=("black", "long sleeves"))
    assert steps[1].candidate == "i2" and steps[1].candidate_title == "Men Black Tshirt 2"
    assert read_step(empty_graph, third.query_id).roles == CaptionRoles(added=("black",), removed=("red",))
    # A step is an ordinary stored query: likes and the stored-query reader work on it.
    like(empty_graph, second.query_id, ["i6"], who="ann")
    assert read_step(empty_graph, second.query_id).liked == ("i6",)
    assert stored_query(empty_graph, second.query_id).candidate == "i2"
    # New attribute names are created as for any stored query; the session is recorded once.
    assert scalar(empty_graph, "MATCH (a:Attribute {name: 'long sleeves'}) RETURN a.kind") == "unknown"
    assert scalar(empty_graph, "MATCH (s:Session) RETURN count(s)") == 1
    assert scalar(empty_graph, "MATCH (:Session)-[h:HAS_STEP]->(:Caption {split: 'query'}) RETURN count(h)") == 3
    assert scalar(empty_graph, "MATCH (:Caption)-[f:FOLLOWS]->(:Caption) RETURN count(f)") == 2


def test_unknown_ids_write_nothing(empty_graph):
    _load(empty_graph, 3)
    first = store_step(empty_graph, "i0", "in black", CaptionRoles(added=("black",)))
    before = counts(empty_graph)
    for kwargs, message in (
        ({"candidate_id": "nope"}, "unknown image id 'nope'"),
        ({"session_id": "s-missing"}, "unknown session id 's-missing'"),
        ({"session_id": first.session_id, "parent_id": "q-elsewhere"}, "is not a step of session"),
        ({"parent_id": first.query_id}, "has no session given"),
    ):
        args = {"candidate_id": "i1", "text": "in red", "roles": CaptionRoles(added=("red",)), **kwargs}
        with pytest.raises(UnknownNodeError, match=message):
            store_step(empty_graph, **args)
    assert counts(empty_graph) == before
    with pytest.raises(UnknownNodeError):
        read_step(empty_graph, "q-none")
    with pytest.raises(UnknownNodeError):
        session_steps(empty_graph, "s-none")


def test_concurrent_steps_of_one_session_get_distinct_numbers(empty_graph):
    _load(empty_graph, 4)
    first = store_step(empty_graph, "i0", "in black", CaptionRoles(added=("black",)))
    errors: list[BaseException] = []

    def step(k: int) -> None:
        try:
            store_step(empty_graph, f"i{k % 4}", f"change {k}", CaptionRoles(), session_id=first.session_id,
                       parent_id=first.query_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=step, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [s.n for s in session_steps(empty_graph, first.session_id)] == list(range(1, 8))


def test_find_product_and_attribute_counts(empty_graph):
    _load(empty_graph)
    tag_image(empty_graph, "i1", "long sleeves", who="bo", phrase="it has long sleeves")
    found = find_products(empty_graph, phrases=["navy blue"], words=["tshirt"])
    # Both navy blue shirts first (the phrase counts 2, the title word 1), then every other title match.
    assert [(p.id, p.score) for p in found[:2]] == [("i3", 3), ("i7", 3)]
    assert {p.id for p in found[2:]} == {"i0", "i1", "i2", "i4", "i5", "i6"} and found[0].attributes == ["navy blue"]
    assert [p.id for p in find_products(empty_graph, [], [], exact="i5")] == ["i5"]
    assert find_products(empty_graph, ["long sleeves"], [])[0].id == "i1"  # tags are found too
    assert find_products(empty_graph, [], []) == []

    details = product(empty_graph, "i1")
    assert details["title"] == "Men Blue Tshirt 1"
    assert {(a["name"], a["edge"], a["source"]) for a in details["attributes"]} == {
        ("blue", "HAS_ATTRIBUTE", "catalog"), ("tshirts", "HAS_ATTRIBUTE", "catalog"),
        ("long sleeves", "USER_TAGGED", "user")}
    assert product(empty_graph, "nope") is None
    assert image_path(empty_graph, "i2") == "/img/i2.jpg" and image_path(empty_graph, "nope") is None

    table = {a["name"]: a for a in attribute_counts(empty_graph)}
    assert table["tshirts"]["images"] == 8 and table["red"]["images"] == 2
    assert (table["long sleeves"]["images"], table["long sleeves"]["tags"]) == (1, 1)
    assert attribute_kinds(empty_graph, ["navy blue", "tshirts", "nope"]) == {
        "navy blue": ("colour",), "tshirts": ("article_type",)}


def test_add_attribute_to_images_is_one_transaction(empty_graph):
    _load(empty_graph, 4)
    before = counts(empty_graph)
    with pytest.raises(UnknownNodeError, match="'missing'"):
        add_attribute_to_images(empty_graph, ["i0", "missing"], "Long Sleeves", "part", "cur")
    assert counts(empty_graph) == before
    out = add_attribute_to_images(empty_graph, ["i0", "i1"], "Long Sleeves", "part", "cur")
    assert out == {"name": "long sleeves", "tagged": 2, "already": 0, "new_attribute": True}
    again = add_attribute_to_images(empty_graph, ["i1", "i2"], "long sleeves", "part", "cur")
    assert again == {"name": "long sleeves", "tagged": 1, "already": 1, "new_attribute": False}
    assert scalar(empty_graph, "MATCH (:Image)-[t:USER_TAGGED {source: 'curator'}]->(:Attribute {name: 'long sleeves'}) "
                               "RETURN count(t)") == 3


def test_explanation_subgraph_is_the_browser_query_s(empty_graph):
    _load(empty_graph)
    step = store_step(empty_graph, "i0", "in blue, not red", CaptionRoles(added=("blue",), removed=("red",)))
    like(empty_graph, step.query_id, ["i1"], who="ann")
    graph = explain_graph(empty_graph, step.query_id, "i1")
    by_key = {n["key"]: n for n in graph["nodes"]}
    roles = {n.get("role"): (n.get("id") or n.get("name")) for n in graph["nodes"] if n.get("role")}
    assert roles == {"query": step.query_id, "result": "i1", "candidate": "i0"}
    names = {n.get("name") for n in graph["nodes"] if n["label"] == "Attribute"}
    assert names == {"blue", "red", "tshirts"}
    typed = {(e["type"], by_key[e["from"]].get("id") or by_key[e["from"]].get("name"),
              by_key[e["to"]].get("id") or by_key[e["to"]].get("name")) for e in graph["edges"]}
    assert ("MODIFIES", step.query_id, "i0") in typed and ("LIKED_FOR", "i1", step.query_id) in typed
    assert ("MENTIONS", step.query_id, "blue") in typed and ("HAS_ATTRIBUTE", "i1", "blue") in typed
    assert all(e["from"] in by_key and e["to"] in by_key for e in graph["edges"]) and graph["hidden"] == 0
    small = explain_graph(empty_graph, step.query_id, "i1", limit=3)
    assert len(small["nodes"]) == 3 and small["hidden"] == len(graph["nodes"]) - 3
    assert {n.get("role") for n in small["nodes"]} == {"query", "result", "candidate"}

    # The facts of several results in one read are each result's own.
    assert explain_facts(empty_graph, step.query_id, ["i1", "i2", "i1"]) == {
        "i1": explain(empty_graph, step.query_id, "i1").facts, "i2": explain(empty_graph, step.query_id, "i2").facts}
    with pytest.raises(UnknownNodeError, match="'nope'"):
        explain_facts(empty_graph, step.query_id, ["i1", "nope"])
    with pytest.raises(UnknownNodeError, match="unknown query id"):
        explain_facts(empty_graph, "q-none", ["i1"])

    # The Browser link's query: one statement, the ids written in as literals; it returns what the
    # parameterised query returns.
    ex = explain(empty_graph, step.query_id, "i1")
    inline = ex.browser_query()
    assert "$query_id" not in inline and "$result_id" not in inline and f"'{step.query_id}'" in inline
    with_params, _, _ = empty_graph.execute_query(ex.cypher, ex.params)
    inlined, _, _ = empty_graph.execute_query(inline)
    assert [len(v) if isinstance(v, list) else v.element_id for v in with_params[0].values()] == \
        [len(v) if isinstance(v, list) else v.element_id for v in inlined[0].values()]
