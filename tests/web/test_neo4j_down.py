"""Neo4j going away under a running `tailor serve` (real server, real Neo4j behind a TCP forwarder the test
can cut): every route answers 503 with the reason within 5 s, /health says that Neo4j (not the index) is
down, and the server recovers by itself when Neo4j is back. A Neo4j that stops answering without closing
its connections is answered within the request's time limit."""

from __future__ import annotations

import json
import time
from urllib.parse import urlparse

import pytest

from tests.helpers import TcpProxy
from tests.web.conftest import ServeProcess

pytestmark = pytest.mark.neo4j
REQUEST_TIMEOUT_S = 10.0  # generous: the test machine is shared


@pytest.fixture(scope="module")
def proxied(catalog_home, neo4j_target, tmp_path_factory):
    """`tailor serve` whose Neo4j connection runs through a forwarder the test controls."""
    from dataclasses import replace

    bolt = urlparse(neo4j_target.settings.uri)
    proxy = TcpProxy(bolt.hostname, bolt.port)
    folder = tmp_path_factory.mktemp("down")
    (folder / "serve.json").write_text(json.dumps({"request_timeout_s": REQUEST_TIMEOUT_S}))
    settings = replace(neo4j_target.settings, uri=f"bolt://127.0.0.1:{proxy.port}")
    server = ServeProcess(catalog_home, settings, folder / "serve.log", args=("--config", str(folder / "serve.json")))
    server.start()
    yield server, proxy
    proxy.up()
    server.stop()
    proxy.down()


def _timed(call):
    start = time.monotonic()
    out = call()
    return out, time.monotonic() - start


def _sample(server: ServeProcess, driver) -> tuple[str, str]:
    """An image of the graph and a query stored on it (Neo4j up)."""
    records, _, _ = driver.execute_query("MATCH (i:Image) RETURN i.id AS id ORDER BY id LIMIT 1")
    image = records[0]["id"]
    out = server.post("/query", {"image": image, "text": "make it black", "k": 3})
    assert out.status == 200, out.body
    return image, out.body["query_id"]


def test_neo4j_down_is_a_503_within_5_seconds_and_recovers(proxied, neo4j_driver) -> None:
    server, proxy = proxied
    image, query_id = _sample(server, neo4j_driver)
    colour = neo4j_driver.execute_query("MATCH (:Image)-[:HAS_ATTRIBUTE]->(a:Attribute {kind: 'colour'}) "
                                        "RETURN a.name AS name LIMIT 1").records[0]["name"]
    proxy.down()
    try:
        calls = {
            "query": lambda: server.post("/query", {"image": image, "text": "make it red", "k": 3}),
            "like": lambda: server.post("/like", {"query_id": query_id, "images": [image]}),
            "explain": lambda: server.get(f"/explain?query={query_id}&result={image}"),
            "tag": lambda: server.post("/tag", {"image": image, "sentence": f"it is {colour}"}),
            "sync": lambda: server.post("/sync", {}),
        }
        for name, call in calls.items():
            out, seconds = _timed(call)
            assert out.status == 503 and "Neo4j" in out.body["error"], (name, out.body)
            assert seconds < 5, f"{name} took {seconds:.1f} s"
        health, seconds = _timed(lambda: server.get("/health"))
        assert health.status == 503 and seconds < 5
        assert health.body["neo4j"]["ok"] is False and health.body["index"]["ok"] is True
        search = server.post("/search", {"image": image, "text": "make it red", "k": 3})
        assert search.status == 200  # the read-only search needs no database
    finally:
        proxy.up()
    deadline = time.monotonic() + 30
    while server.get("/health").status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server.post("/query", {"image": image, "text": "make it red", "k": 3}).status == 200


def test_a_neo4j_that_stops_answering_is_a_503_within_the_request_limit(proxied, neo4j_driver) -> None:
    server, proxy = proxied
    image, query_id = _sample(server, neo4j_driver)
    proxy.hang()
    try:
        out, seconds = _timed(lambda: server.get(f"/explain?query={query_id}&result={image}"))
        assert out.status == 503 and seconds < REQUEST_TIMEOUT_S + 2, (out.body, seconds)
        search = server.post("/search", {"image": image, "text": "make it red", "k": 3})
        assert search.status == 200
    finally:
        proxy.down()  # the stuck connections go; the driver reconnects
        proxy.up()
