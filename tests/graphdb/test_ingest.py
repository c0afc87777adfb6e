"""graphdb.ingest against the real server: idempotence, resumption, and bad input that must change nothing.

Every failure case counts nodes and relationships before and after: a refused batch leaves the graph as
it was. Records are built by hand here (the readers have their own tests); test_loaders.py goes through
the files.
"""

from __future__ import annotations

import pytest

from tests.helpers import counts, scalar

pytest.importorskip("neo4j")

from graphdb.ingest import IngestError, IngestReport, ingest_images, ingest_queries  # noqa: E402
from readers.records import AttributeValue, ImageRecord, QueryRecord, ReaderError  # noqa: E402

pytestmark = pytest.mark.neo4j

SOURCE = "/data/products.csv"
QUERIES = "/data/split.json"


def image(n: int, title: str | None = None, colour: str = "red", **kw) -> ImageRecord:
    attrs = (AttributeValue("colour", colour), AttributeValue("article_type", "tshirts"),
             AttributeValue("gender", "men"))
    return ImageRecord(f"i{n}", title if title is not None else f"Brand Men {colour.title()} Tshirt {n}",
                       f"/data/images/i{n}.jpg", kw.pop("split", "train"), kw.pop("group", ""),
                       kw.pop("attributes", attrs), source_line=n + 2)


def query(n: int, candidate: int, target: int | None, text: str | None = None, **kw) -> QueryRecord:
    return QueryRecord(f"q{n}", f"i{candidate}", None if target is None else f"i{target}",
                       text if text is not None else f"replace red with blue {n}", kw.pop("split", "train"),
                       kw.pop("group", "g"), added=kw.pop("added", ("blue",)),
                       removed=kw.pop("removed", ("red",)), mentioned=kw.pop("mentioned", ()),
                       source_line=n + 1)




def load_small(driver, images: int = 6, queries: int = 4) -> tuple[IngestReport, IngestReport]:
    a = ingest_images(driver, [image(n, colour=("red", "blue")[n % 2]) for n in range(images)], SOURCE)
    b = ingest_queries(driver, [query(n, n, n + 1) for n in range(queries)], QUERIES)
    return a, b


# ------------------------------------------------------------------------------------ happy paths


def test_small_load_counts_then_second_run_creates_nothing(empty_graph):
    a, b = load_small(empty_graph)
    # 6 images + red, blue, tshirts, men; 4 captions
    assert (a.nodes_created, a.relationships_created, a.rows, a.batches) == (10, 18, 6, 1)
    assert (b.nodes_created, b.relationships_created) == (4, 4 * 4)  # MODIFIES, TARGETS, 2 MENTIONS
    before = counts(empty_graph)
    assert before == (14, 34)
    a2, b2 = load_small(empty_graph)
    assert (a2.nodes_created, a2.relationships_created) == (0, 0)
    assert (b2.nodes_created, b2.relationships_created) == (0, 0)
    assert a2.properties_set == b2.properties_set == 0  # a rerun writes nothing at all
    assert counts(empty_graph) == before


def test_graph_shape(empty_graph):
    load_small(empty_graph, images=3, queries=1)
    rec = empty_graph.execute_query(
        "MATCH (c:Caption {id: 'q0'})-[:MODIFIES]->(cand:Image), (c)-[:TARGETS]->(t:Image) "
        "RETURN c.text AS text, c.split AS split, cand.id AS cand, t.id AS target, "
        "[(c)-[m:MENTIONS]->(a) | [a.name, m.role]] AS mentions, c.updated_at IS NOT NULL AS stamped"
    )[0][0]
    assert (rec["text"], rec["split"], rec["cand"], rec["target"], rec["stamped"]) == (
        "replace red with blue 0", "train", "i0", "i1", True)
    assert sorted(rec["mentions"]) == [["blue", "added"], ["red", "removed"]]
    edge = empty_graph.execute_query(
        "MATCH (:Image {id: 'i0'})-[r:HAS_ATTRIBUTE]->(:Attribute {name: 'red'}) "
        "RETURN r.source AS source, r.confidence AS confidence, r.created_at IS NOT NULL AS stamped"
    )[0][0]
    assert (edge["source"], edge["confidence"], edge["stamped"]) == ("catalog", 1.0, True)
    assert scalar(empty_graph, "MATCH (a:Attribute {name: 'tshirts'}) RETURN a.kind") == "article_type"


def test_attribute_spellings_are_one_node(empty_graph):
    ingest_images(empty_graph, [image(1, colour="Navy Blue"), image(2, colour=" navy  blue"),
                                image(3, colour="NAVY BLUE")], SOURCE)
    assert scalar(empty_graph, "MATCH (a:Attribute) WHERE toLower(a.name) CONTAINS 'navy' "
                               "RETURN collect(a.name)") == ["navy blue"]
    assert scalar(empty_graph, "MATCH (:Image)-[r:HAS_ATTRIBUTE]->(:Attribute {name: 'navy blue'}) "
                               "RETURN count(r)") == 3


def test_many_batches_and_workers_give_the_same_graph(empty_graph):
    images = [image(n, colour=("red", "blue", "green")[n % 3]) for n in range(40)]
    queries = [query(n, n, (n + 7) % 40) for n in range(40)]
    a = ingest_images(empty_graph, images, SOURCE, batch_size=7, workers=3)
    b = ingest_queries(empty_graph, queries, QUERIES, batch_size=6, workers=3)
    assert (a.batches, b.batches) == (6, 7)
    assert (a.rows, b.rows) == (40, 40)
    assert a.relationships_created == 120 and b.relationships_created == 160
    assert counts(empty_graph) == (40 + 5 + 40, 280)


def test_rerun_fills_in_what_is_missing(empty_graph):
    ingest_images(empty_graph, [image(1, split="", group="")], SOURCE)
    ingest_queries(empty_graph, [query(1, 1, None, added=("blue",), removed=())], QUERIES)
    more = (AttributeValue("colour", "red"), AttributeValue("pattern", "striped"))
    report = ingest_images(empty_graph, [image(1, split="val", group="g1", attributes=more), image(2)],
                           SOURCE)
    assert report.nodes_created == 2  # i2 and 'striped' (the other attributes exist)
    assert report.relationships_created == 1 + 3  # i1 -> striped; i2's three
    rec = empty_graph.execute_query("MATCH (i:Image {id: 'i1'}) RETURN i.split AS split, i.group AS group"
                                    )[0][0]
    assert (rec["split"], rec["group"]) == ("val", "g1")
    report = ingest_queries(empty_graph, [query(1, 1, 2, added=("blue",), removed=("red",))], QUERIES)
    assert (report.nodes_created, report.relationships_created) == (0, 2)  # TARGETS, MENTIONS removed
    assert counts(empty_graph) == (2 + 1 + 5, 1 + 3 + 3 + 1 + 1 + 2)


def test_repeated_ids_in_one_batch_are_folded(empty_graph):
    extra = (AttributeValue("pattern", "striped"),)
    report = ingest_images(empty_graph, [image(1), image(1, attributes=extra), image(2)], SOURCE)
    assert report.nodes_created == 2 + 4
    assert scalar(empty_graph, "MATCH (:Image {id: 'i1'})-[r]->() RETURN count(r)") == 4
    report = ingest_queries(empty_graph, [query(1, 1, 2), query(1, 1, 2, mentioned=("striped",))], QUERIES)
    assert (report.nodes_created, report.relationships_created) == (2, 5)  # q1 and 'blue'


def test_query_without_target_and_caption_only_attributes(empty_graph):
    load_small(empty_graph, images=2, queries=0)
    report = ingest_queries(empty_graph, [query(1, 0, None, added=("sequinned",), removed=())], QUERIES)
    assert (report.nodes_created, report.relationships_created) == (2, 2)  # caption + 'sequinned'
    assert scalar(empty_graph, "MATCH (a:Attribute {name: 'sequinned'}) RETURN a.kind") == "unknown"
    assert scalar(empty_graph, "MATCH (:Caption {id: 'q1'})-[r:TARGETS]->() RETURN count(r)") == 0


def test_cypher_looking_text_is_stored_verbatim(empty_graph):
    load_small(empty_graph)
    before = counts(empty_graph)
    nasty = "'}) DETACH DELETE n //"
    nasty_id = 'x"}) MATCH (n) DETACH DELETE n //'
    attrs = (AttributeValue("colour", nasty),)
    ingest_images(empty_graph, [ImageRecord(nasty_id, nasty, nasty, "train", nasty, attrs, source_line=2)],
                  SOURCE)
    ingest_queries(empty_graph, [QueryRecord(nasty, nasty_id, "i0", nasty, "test", nasty,
                                             added=(nasty.lower(),), source_line=1)], QUERIES)
    assert counts(empty_graph) == (before[0] + 3, before[1] + 1 + 3)
    rec = empty_graph.execute_query(
        "MATCH (c:Caption {id: $id})-[:MODIFIES]->(i:Image) "
        "RETURN c.text AS text, i.id AS image, i.title AS title",
        id=nasty,
    )[0][0]
    assert (rec["text"], rec["image"], rec["title"]) == (nasty, nasty_id, nasty)
    assert scalar(empty_graph, "MATCH (a:Attribute {name: $n}) RETURN count(a)", n=nasty.lower()) == 1


# -------------------------------------------------------------------------- refused batches


def assert_error(exc: pytest.ExceptionInfo, path: str, line: int, field: str, *words: str) -> None:
    err = exc.value
    assert isinstance(err, ReaderError)
    assert (err.path, err.line, err.field_name) == (path, line, field)
    for word in words:
        assert word in str(err)


def test_image_id_with_another_title_changes_nothing(empty_graph):
    load_small(empty_graph)
    before = counts(empty_graph)
    batch = [image(7), image(3, title="Another Title"), image(8)]
    with pytest.raises(IngestError) as exc:
        ingest_images(empty_graph, batch, SOURCE)
    assert_error(exc, SOURCE, 5, "title", "'i3'", "Another Title")
    assert counts(empty_graph) == before  # i7 and i8 of the same batch were rolled back too


def test_image_id_with_another_image_path_changes_nothing(empty_graph):
    load_small(empty_graph)
    before = counts(empty_graph)
    moved = ImageRecord("i2", "", "/elsewhere/i2.jpg", source_line=9)
    with pytest.raises(IngestError) as exc:
        ingest_images(empty_graph, [moved], SOURCE)
    assert_error(exc, SOURCE, 9, "image_path", "/elsewhere/i2.jpg")
    assert counts(empty_graph) == before


def test_same_id_twice_in_a_batch_with_other_titles_changes_nothing(empty_graph):
    load_small(empty_graph)
    before = counts(empty_graph)
    with pytest.raises(IngestError) as exc:
        ingest_images(empty_graph, [image(20), image(20, title="Other")], SOURCE)
    assert_error(exc, SOURCE, 22, "title")
    assert counts(empty_graph) == before


def test_caption_id_with_other_text_changes_nothing(empty_graph):
    load_small(empty_graph)
    before = counts(empty_graph)
    with pytest.raises(IngestError) as exc:
        ingest_queries(empty_graph, [query(9, 0, 1), query(2, 2, 3, text="make it green")], QUERIES)
    assert_error(exc, QUERIES, 3, "text", "'q2'", "make it green")
    assert counts(empty_graph) == before


@pytest.mark.parametrize(("candidate", "target", "field"), [(99, 1, "candidate"), (1, 98, "target")])
def test_caption_naming_an_unknown_image_changes_nothing(empty_graph, candidate, target, field):
    load_small(empty_graph)
    before = counts(empty_graph)
    with pytest.raises(IngestError) as exc:
        ingest_queries(empty_graph, [query(10, 0, 1), query(11, candidate, target)], QUERIES)
    missing = candidate if field == "candidate" else target
    assert_error(exc, QUERIES, 12, field, "unknown image", f"'i{missing}'")
    assert counts(empty_graph) == before


@pytest.mark.parametrize("workers", [1, 2])
def test_error_in_batch_3_of_5_keeps_1_and_2_and_a_rerun_finishes(empty_graph, workers):
    ingest_images(empty_graph, [image(25, title="Stored Title")], SOURCE)
    records = [image(n) for n in range(50)]  # batches of 10: i25 (batch 3) collides
    with pytest.raises(IngestError) as exc:
        ingest_images(empty_graph, records, SOURCE, batch_size=10, workers=workers)
    assert_error(exc, SOURCE, 27, "title")
    stored = set(scalar(empty_graph, "MATCH (i:Image) RETURN collect(i.id)"))
    assert {f"i{n}" for n in range(20)} <= stored  # batches 1 and 2 committed
    assert not stored & {f"i{n}" for n in range(20, 30) if n != 25}  # nothing of batch 3
    if workers == 1:
        assert stored == {f"i{n}" for n in range(20)} | {"i25"}  # in order: nothing after it either
    fixed = [image(n, title="Stored Title") if n == 25 else image(n) for n in range(50)]
    report = ingest_images(empty_graph, fixed, SOURCE, batch_size=10, workers=workers)
    assert report.nodes_created == 50 - len(stored)
    assert scalar(empty_graph, "MATCH (i:Image) RETURN count(i)") == 50
    assert scalar(empty_graph, "MATCH (:Image)-[r:HAS_ATTRIBUTE]->() RETURN count(r)") == 150
    again = ingest_images(empty_graph, fixed, SOURCE, batch_size=10, workers=workers)
    assert (again.nodes_created, again.relationships_created) == (0, 0)


def test_interrupted_by_the_caller_then_resumed(empty_graph):
    load_small(empty_graph, images=30, queries=0)
    queries = [query(n, n, n + 1) for n in range(25)]
    seen = []

    def progress(n: int) -> None:  # Ctrl-C after the second batch committed
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_queries(empty_graph, queries, QUERIES, batch_size=5, progress=progress, workers=1)
    assert scalar(empty_graph, "MATCH (c:Caption) RETURN count(c)") == 10
    report = ingest_queries(empty_graph, queries, QUERIES, batch_size=5)
    assert (report.nodes_created, report.relationships_created) == (15, 60)
    assert scalar(empty_graph, "MATCH (c:Caption)-[r]->() RETURN count(r)") == 100


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_input_midway_in_a_stream_keeps_what_came_before(empty_graph, workers):
    def records():  # as read_catalog streams: the 23rd record is unreadable
        yield from (image(n) for n in range(22))
        raise ReaderError(SOURCE, 24, "expected 10 fields, got 4 (truncated row?)", "articleType")

    with pytest.raises(ReaderError, match="truncated"):
        ingest_images(empty_graph, records(), SOURCE, batch_size=5, workers=workers)
    assert scalar(empty_graph, "MATCH (i:Image) RETURN count(i)") == 20  # the 4 whole batches read before it


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch size"):
        ingest_images(None, [image(1)], SOURCE, batch_size=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        ingest_images(None, [image(1)], SOURCE, workers=0)  # type: ignore[arg-type]
