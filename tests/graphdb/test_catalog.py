"""A changing catalog against the real server: changed rows (--update), retired products, --replace, and
the incremental base export that follows all of it (equal to a fresh export after each change)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import counts, scalar

pytest.importorskip("neo4j")

from graphdb.catalog import UnknownImagesError, existing_images, image_ids, retire_images  # noqa: E402
from graphdb.export import export_base, update_base  # noqa: E402
from graphdb.ingest import IngestError, ingest_images, ingest_queries  # noqa: E402
from graphdb.interactions import (  # noqa: E402
    UnknownNodeError,  # noqa: E402
    changed_nodes,
    like,
    store_query,
    stored_query,
    tag_image,
)
from graphdb.loaders import CatalogReplaceError, load_catalog  # noqa: E402
from readers.captions import CaptionRoles  # noqa: E402
from readers.graph_records import GraphExport  # noqa: E402
from readers.records import AttributeValue, ImageRecord, QueryRecord  # noqa: E402
from tests.graphdb.test_loaders import ROWS, write_catalog  # noqa: E402

pytestmark = pytest.mark.neo4j
SOURCE = "/data/products.csv"


def image(n: int, colour: str = "red", title: str | None = None, path: str | None = None,
          extra: tuple[AttributeValue, ...] = ()) -> ImageRecord:
    attrs = (AttributeValue("colour", colour), AttributeValue("article_type", "tshirts"), *extra)
    return ImageRecord(f"i{n}", title or f"Men {colour.title()} Tshirt {n}", path or f"/img/i{n}.jpg", "train",
                       "g", attrs, source_line=n + 2)


def catalog_edges(driver, image_id: str) -> set[str]:
    records, _, _ = driver.execute_query(
        "MATCH (:Image {id: $id})-[r:HAS_ATTRIBUTE {source: 'catalog'}]->(a) RETURN collect(a.name) AS names",
        id=image_id)
    return set(records[0]["names"])


def stamp(driver, image_id: str):
    return scalar(driver, "MATCH (i:Image {id: $id}) RETURN i.updated_at", id=image_id)


# ---------------------------------------------------------------------------------- changed rows


def test_a_changed_row_is_refused_by_default_and_applied_with_update(empty_graph):
    ingest_images(empty_graph, [image(n) for n in range(3)], SOURCE)
    before_counts, before_stamp = counts(empty_graph), stamp(empty_graph, "i1")
    changed = image(1, colour="blue", title="Men Blue Tshirt 1 (new season)", path="/img/i1-v2.jpg",
                    extra=(AttributeValue("pattern", "striped"),))
    with pytest.raises(IngestError) as exc:
        ingest_images(empty_graph, [changed], SOURCE)
    assert "--update" in str(exc.value) and "'i1'" in str(exc.value)
    assert counts(empty_graph) == before_counts

    report = ingest_images(empty_graph, [image(0), changed, image(2)], SOURCE, update=True)
    assert report.changed == ["i1"]  # i0 and i2 are as they were: untouched
    node = empty_graph.execute_query("MATCH (i:Image {id: 'i1'}) RETURN i.title AS t, i.image_path AS p")[0][0]
    assert (node["t"], node["p"]) == ("Men Blue Tshirt 1 (new season)", "/img/i1-v2.jpg")
    assert catalog_edges(empty_graph, "i1") == {"blue", "tshirts", "striped"}  # red is gone
    assert report.relationships_deleted == 1 and report.relationships_created == 2
    assert stamp(empty_graph, "i1") > before_stamp  # sync will re-read it
    assert ingest_images(empty_graph, [changed], SOURCE, update=True).changed == []  # a rerun is a no-op


def test_update_keeps_what_an_empty_cell_and_other_sources_say(empty_graph):
    ingest_images(empty_graph, [image(1)], SOURCE)
    ingest_images(empty_graph, [ImageRecord("i1", "", "", "", "", (AttributeValue("colour", "maroon"),))],
                  SOURCE, attribute_source="predicted")
    tag_image(empty_graph, "i1", "long sleeves", who="ann")
    blank = ImageRecord("i1", "", "", "train", "g", (AttributeValue("colour", "red"),), source_line=3)
    ingest_images(empty_graph, [blank], SOURCE, update=True)
    node = empty_graph.execute_query("MATCH (i:Image {id: 'i1'}) RETURN i.title AS t, i.image_path AS p")[0][0]
    assert (node["t"], node["p"]) == ("Men Red Tshirt 1", "/img/i1.jpg")  # empty cells keep the stored value
    assert catalog_edges(empty_graph, "i1") == {"red"}  # the row's catalog attributes, exactly
    assert scalar(empty_graph, "MATCH (:Image {id: 'i1'})-[r:HAS_ATTRIBUTE {source: 'predicted'}]->() "
                               "RETURN count(r)") == 1
    assert scalar(empty_graph, "MATCH (:Image {id: 'i1'})-[r:USER_TAGGED]->() RETURN count(r)") == 1


# ---------------------------------------------------------------------------------- retiring


def _small_graph(driver) -> str:
    """Four images, composed queries between them, a user query on i0 liked with i1 and i3, a tag."""
    ingest_images(driver, [image(n, colour=("red", "blue")[n % 2]) for n in range(4)], SOURCE)
    ingest_queries(driver, [QueryRecord(f"c{n}", f"i{n}", f"i{(n + 1) % 4}", "replace red with blue", "train",
                                        "g", ("blue",), ("red",), source_line=n + 1) for n in range(4)],
                   "/data/split.json")
    query = store_query(driver, "i0", "make it blue", CaptionRoles(added=("blue",)), who="ann")
    like(driver, query, ["i1", "i3"], who="ann")
    tag_image(driver, "i2", "long sleeves", who="bo")
    return query


def test_retiring_removes_nodes_edges_and_catalog_queries_in_one_go(empty_graph):
    query = _small_graph(empty_graph)
    since = changed_nodes(empty_graph, "2000-01-01T00:00:00+00:00")["until"]
    report = retire_images(empty_graph, ["i0", "i1"])
    assert report.images == ["i0", "i1"]
    assert image_ids(empty_graph) == {"i2", "i3"}
    assert scalar(empty_graph, "MATCH (c:Caption) WHERE c.split <> 'query' RETURN collect(c.id)") == ["c2"]
    assert report.captions_deleted == 3  # c0 (i0 -> i1), c1 (i1 -> i2), c3 (i3 -> i0)
    # The user query keeps its text, loses its candidate, and says so when asked again.
    kept = empty_graph.execute_query(
        "MATCH (c:Caption {id: $id}) RETURN c.text AS text, c.retired_candidates AS retired, "
        "[(c)-[:MODIFIES]->(x) | x.id] AS candidates, [(x)-[:LIKED_FOR]->(c) | x.id] AS liked", id=query)[0][0]
    assert (kept["text"], kept["retired"], kept["candidates"], kept["liked"]) == ("make it blue", ["i0"], [], ["i3"])
    assert report.user_queries_kept == 1
    with pytest.raises(UnknownNodeError, match="'i0' was retired"):
        stored_query(empty_graph, query)
    # Nothing of theirs is left, and the neighbours whose edges changed are marked for the next sync.
    assert scalar(empty_graph, "MATCH (i:Image)-[r]-(j:Image) WHERE i.id IN ['i0', 'i1'] RETURN count(r)") == 0
    marked = changed_nodes(empty_graph, since)
    assert "i3" in marked["Image"] and query in marked["Caption"]  # i3 was liked with i1
    assert {"red", "blue", "tshirts"} <= set(marked["Attribute"])
    assert marked["image_count"] == 2


def test_an_unknown_id_retires_nothing(empty_graph):
    _small_graph(empty_graph)
    before = counts(empty_graph)
    with pytest.raises(UnknownImagesError) as exc:
        retire_images(empty_graph, ["i2", "nope"])
    assert "'nope'" in str(exc.value) and "nothing retired" in str(exc.value)
    assert counts(empty_graph) == before and existing_images(empty_graph, ["i2"]) == {"i2"}


def test_replace_retires_what_the_file_no_longer_lists_and_refuses_a_truncated_file(empty_graph, tmp_path: Path):
    path = write_catalog(tmp_path / "shop")
    split = tmp_path / "split.json"
    load_catalog(empty_graph, path, split)
    before = counts(empty_graph)
    short = write_catalog(tmp_path / "shop", ROWS[:2], name="short.csv")
    with pytest.raises(CatalogReplaceError, match="would retire 4 of the 6"):
        load_catalog(empty_graph, short, split, replace=True)
    assert counts(empty_graph) == before
    daily = write_catalog(tmp_path / "shop", ROWS[:5], name="daily.csv")  # product 6 is gone
    summary = load_catalog(empty_graph, daily, split, replace=True)
    assert summary.retired is not None and summary.retired.images == ["6"]
    assert image_ids(empty_graph) == {"1", "2", "3", "4", "5"}
    assert scalar(empty_graph, "MATCH (c:Caption)-[:MODIFIES|TARGETS]->(:Image {id: '6'}) RETURN count(c)") == 0
    assert summary.new_images == [] and summary.skipped_queries > 0


# ---------------------------------------------------------------------------------- the base export follows


def _comparable(export: GraphExport) -> tuple:
    edges = Counter((e.relation, e.src_kind, e.src, e.dst_kind, e.dst) for e in export.edges)
    images = [(i.id, i.title, i.image_path) for i in export.images]
    captions = sorted((c.id, c.text, c.candidate) for c in export.captions)
    return images, captions, dict(export.attributes), edges


def test_update_base_follows_new_changed_and_retired_products(empty_graph):
    _small_graph(empty_graph)
    base = export_base(empty_graph)
    since = changed_nodes(empty_graph, "2000-01-01T00:00:00+00:00")["until"]

    def follow() -> None:
        nonlocal base, since
        changed = changed_nodes(empty_graph, since)
        base = update_base(empty_graph, base, changed["Image"], changed["Caption"])
        assert _comparable(base) == _comparable(export_base(empty_graph))
        since = changed["until"]

    ingest_images(empty_graph, [image(n, colour="blue") for n in range(4, 7)], SOURCE)  # new products
    follow()
    assert {"i4", "i5", "i6"} <= {r.id for r in base.images}
    ingest_images(empty_graph, [image(2, colour="blue", title="Renamed", path="/img/i2-v2.jpg")], SOURCE,
                  update=True)  # a changed one
    follow()
    retire_images(empty_graph, ["i1", "i5"])  # retired ones: one liked, one plain
    follow()
    assert not {"i1", "i5"} & {r.id for r in base.images}
    empty_graph.execute_query("MATCH (i:Image {id: 'i6'}) DETACH DELETE i")  # by hand: no marks at all
    follow()
