"""neo4j:// URIs: the driver's routing (what a cluster or Aura needs) against the local server, with the
reads in read transactions and the writes routed to the leader."""

from __future__ import annotations

import pytest

pytest.importorskip("neo4j")

from graphdb.connection import open_driver  # noqa: E402
from graphdb.export import export_graph_columns, read_base_delta, server_time  # noqa: E402
from graphdb.interactions import tag_image  # noqa: E402
from graphdb.settings import Neo4jSettings  # noqa: E402
from tests.engine.test_live import _load  # noqa: E402

pytestmark = pytest.mark.neo4j


def test_a_routing_uri_reads_on_readers_and_writes_on_the_leader(empty_graph, neo4j_target) -> None:
    settings = neo4j_target.settings
    if not settings.uri.startswith("bolt://"):
        pytest.skip(f"needs a bolt:// server to route to, not {settings.uri}")
    _load(empty_graph)
    routed = Neo4jSettings(uri="neo4j://" + settings.uri.removeprefix("bolt://"), user=settings.user,
                           password=settings.password)
    driver = open_driver(routed)
    try:
        table = driver.execute_query("CALL dbms.routing.getRoutingTable({}) YIELD servers RETURN servers")[0][0]
        roles = {s["role"] for s in table["servers"]}
        assert {"READ", "WRITE", "ROUTE"} <= roles  # one server plays every role; a cluster splits them
        assert tag_image(driver, "red-dress-0", "striped").created_edge  # a write, routed to the leader
        delta = read_base_delta(driver, ["red-dress-0"], [])  # reads, routed to readers ...
        assert ("USER_TAGGED", "striped") in {(e.relation, e.dst) for e in delta.edges}  # ... that see it
        assert len(export_graph_columns(driver).image_ids) == 48 and server_time(driver) is not None
    finally:
        driver.close()
