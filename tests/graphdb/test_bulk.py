"""graphdb.bulk against real servers: a bulk load writes the graph the incremental load writes, only into an
empty database, and refuses bad input with the line at fault."""

from __future__ import annotations

import pytest

pytest.importorskip("neo4j")

from graphdb.bulk import DatabaseNotEmptyError, bulk_create, bulk_import  # noqa: E402
from graphdb.ingest import IngestError, ingest_images, ingest_queries  # noqa: E402
from graphdb.maintenance import delete_everything  # noqa: E402
from readers.records import AttributeValue, ImageRecord, QueryRecord  # noqa: E402
from tests.helpers import counts  # noqa: E402

pytestmark = pytest.mark.neo4j

STAMPS = {"updated_at", "created_at"}


def catalog(images: int = 9) -> tuple[list[ImageRecord], list[QueryRecord]]:
    colours = ("red", "blue", "navy blue")
    recs = []
    for n in range(images):
        attrs = (AttributeValue("colour", colours[n % 3]), AttributeValue("article_type", "tshirts"),
                 AttributeValue("gender", ("men", "women")[n % 2]))
        if n == 4:  # a value with two kinds, as in real catalogs
            attrs += (AttributeValue("usage", "casual"), AttributeValue("season", "casual"))
        recs.append(ImageRecord(f"i{n}", f"Brand Men {colours[n % 3]} Tshirt", f"/img/i{n}.jpg",
                                ("train", "test")[n % 2], f"g{n // 3}", attrs, source_line=n + 2))
    queries = [QueryRecord(f"q{n}", f"i{n}", f"i{(n + 1) % images}", f"replace {colours[n % 3]} with x", "train",
                           f"g{n // 3}", added=(colours[(n + 1) % 3],), removed=(colours[n % 3],),
                           mentioned=("striped",) if n == 2 else (), source_line=n + 2)
               for n in range(images - 1)]
    queries.append(QueryRecord("q-open", "i0", None, "make it green", "test", "g0", added=("green",)))
    return recs, queries


def graph_dump(driver) -> tuple[list, list]:
    """Every node and relationship with its properties (timestamps only as present or not)."""
    nodes, _, _ = driver.execute_query(
        "MATCH (n) RETURN labels(n) AS labels, properties(n) AS props ORDER BY coalesce(n.id, n.name)")
    rels, _, _ = driver.execute_query(
        "MATCH (s)-[r]->(d) RETURN type(r) AS t, coalesce(s.id, s.name) AS s, coalesce(d.id, d.name) AS d, "
        "properties(r) AS props ORDER BY t, s, d, r.role")

    def clean(props: dict) -> dict:
        return {k: (v if k not in STAMPS else "stamped") for k, v in sorted(props.items())}

    return ([(r["labels"], clean(r["props"])) for r in nodes],
            [(r["t"], r["s"], r["d"], clean(r["props"])) for r in rels])


def test_bulk_create_writes_what_the_incremental_load_writes(empty_graph) -> None:
    images, queries = catalog()
    ingest_images(empty_graph, images, "products.csv")
    ingest_queries(empty_graph, queries, "split.json")
    expected = graph_dump(empty_graph)
    delete_everything(empty_graph)

    report = bulk_create(empty_graph, [(images[:5], queries[:3]), (images[5:], queries[3:])], batch_size=4,
                         workers=2)
    assert graph_dump(empty_graph) == expected
    assert (report.nodes, report.relationships) == counts(empty_graph)
    assert report.relationships_per_second > 0


def test_bulk_refuses_a_database_that_is_not_empty(empty_graph) -> None:
    images, queries = catalog()
    ingest_images(empty_graph, images[:1], "products.csv")
    before = counts(empty_graph)
    with pytest.raises(DatabaseNotEmptyError, match="already holds 4 nodes.*without --bulk"):
        bulk_create(empty_graph, [(images, queries)])
    assert counts(empty_graph) == before


@pytest.mark.parametrize("bad", ["repeat", "unknown"])
def test_bulk_names_the_line_of_bad_input(empty_graph, bad) -> None:
    images, queries = catalog()
    if bad == "repeat":
        images.append(images[3])
        match = r"products.csv:5: field 'id': image id 'i3' appears twice"
    else:
        queries.append(QueryRecord("q-bad", "i0", "nope", "x", "train", "g", source_line=41))
        match = r"products.csv:41: field 'target': refers to unknown image 'nope'"
    with pytest.raises(IngestError, match=match):
        bulk_create(empty_graph, [(images, queries)], source="products.csv")


def test_bulk_import_through_neo4j_admin_matches_the_incremental_load(empty_graph, tmp_path) -> None:
    """The offline importer on a server of its own (it is stopped and started again)."""
    from graphdb.connection import open_driver
    from graphdb.server.manager import LocalServer
    from graphdb.settings import Neo4jSettings
    from tests.helpers import free_ports

    images, queries = catalog()
    ingest_images(empty_graph, images, "products.csv")
    ingest_queries(empty_graph, queries, "split.json")
    expected = graph_dump(empty_graph)

    bolt, http = free_ports(2)
    server = LocalServer(tmp_path / "neo4j", bolt_port=bolt, http_port=http)
    server.start()

    def driver_for():
        return open_driver(Neo4jSettings(uri=server.status_uri, password=server.password()))

    try:
        # products in rounds of 2, each round's node files between the others: ids ascend across them all
        half = len(images) // 2
        chunks = [(images[:half], []), (images[half:], queries)]
        report = bulk_import(server, driver_for, chunks, round_products=2)
        driver = driver_for()
        try:
            assert graph_dump(driver) == expected
            assert (report.nodes, report.relationships) == counts(driver)
            assert set(report.phases) == {"csv", "server stop", "import", "server start", "schema"}
            with pytest.raises(DatabaseNotEmptyError):  # a second bulk load is refused, the server still up
                bulk_import(server, driver_for, [(images, queries)])
            assert counts(driver) == (report.nodes, report.relationships)
        finally:
            driver.close()
    finally:
        server.stop()
