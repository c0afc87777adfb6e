"""`tailor serve` as a real process (uvicorn, the app, the engine on a trained model, a real Neo4j), tried as
a careful user and an attacker would: every defect of issue 16 answered, and nothing written by a refusal."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from tests.helpers import counts
from tests.web.conftest import ServeProcess

pytestmark = pytest.mark.neo4j

# Short deadlines so that the framing tests wait seconds, not the defaults' tens of seconds.
SERVE_CONFIG = {"header_timeout_s": 2.0, "body_timeout_s": 2.0, "keep_alive_s": 2}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(catalog_home, neo4j_target, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    (folder / "serve.json").write_text(json.dumps(SERVE_CONFIG))
    server = ServeProcess(catalog_home, neo4j_target.settings, folder / "serve.log",
                          args=("--config", str(folder / "serve.json")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sample(served, neo4j_driver) -> dict:
    """A test query of the loaded slice (candidate, text) and a few other image ids."""
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (c:Caption {split: 'test'})-[:MODIFIES]->(i:Image) RETURN c.text AS text, i.id AS candidate "
        "ORDER BY c.id LIMIT 1")
    ids, _, _ = neo4j_driver.execute_query("MATCH (i:Image) RETURN i.id AS id ORDER BY id")
    return {"candidate": records[0]["candidate"], "text": records[0]["text"], "images": [r["id"] for r in ids]}


def unchanged(driver, action: Callable[[], object]) -> object:
    """Run ``action`` and check that the graph has exactly the nodes and relationships it had."""
    before = counts(driver)
    out = action()
    assert counts(driver) == before, "a refused request wrote to the graph"
    return out


def raw(port: int, data: bytes, wait: float = 8.0) -> tuple[bytes, float]:
    """Send raw bytes; what came back until the server closed, and after how long (``wait`` at most)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            out += b"<no answer, still open>"
    return out, time.monotonic() - start


HEAD = b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"


# --- any web page the user visits can write ---------------------------------------------------------------


def test_a_cross_site_text_plain_post_is_refused_and_writes_nothing(served, sample, neo4j_driver) -> None:
    body = {"image": sample["candidate"], "text": "in black"}
    attack = {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example"}
    out = unchanged(neo4j_driver, lambda: served.post("/query", body, headers=attack))
    assert out.status == 403 and "evil.example" in out.body["error"]
    # Each check on its own: a foreign Origin, a rebound Host, a text/plain body, a cross-site fetch.
    for headers, status in [({"Origin": "http://evil.example"}, 403), ({"Host": "evil.example:80"}, 403),
                            ({"Content-Type": "text/plain"}, 415), ({"Sec-Fetch-Site": "cross-site"}, 403),
                            ({"Origin": "null"}, 403)]:
        out = unchanged(neo4j_driver, lambda h=headers: served.post("/query", body, headers=h))
        assert out.status == status, (headers, out.body)
    assert "access-control-allow-origin" not in out.headers
    assert served.get("/health", headers={"Host": "rebound.example"}).status == 403  # reads too (DNS rebinding)
    own = served.post("/query", {**body, "k": 3}, headers={"Origin": f"http://127.0.0.1:{served.port}"})
    assert own.status == 200 and len(own.body["results"]) == 3  # the page of this server may write


def test_a_token_is_required_when_set(catalog_home, neo4j_target, tmp_path) -> None:
    server = ServeProcess(catalog_home, neo4j_target.settings, tmp_path / "serve.log",
                          env={"TAILOR_SERVE_TOKEN": "s3cret-token-for-the-test"}).start()
    try:
        assert server.get("/health").status == 401
        assert server.get("/health", headers={"Authorization": "Bearer wrong"}).status == 401
        assert server.get("/health", headers=server.extra_headers()).status == 200
        assert server.get("/health", headers={"Cookie": "tailor_token=s3cret-token-for-the-test"}).status == 200
    finally:
        server.stop()
    assert "s3cret-token-for-the-test" not in server.log_path.read_text()


def test_serving_beyond_loopback_needs_a_token(monkeypatch) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.delenv("TAILOR_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "TAILOR_SERVE_TOKEN" in result.output


# --- one request, unbounded work ----------------------------------------------------------------------------


def test_big_requests_are_refused_fast_and_write_nothing(served, sample, neo4j_driver) -> None:
    query = served.post("/query", {"image": sample["candidate"], "text": sample["text"], "k": 5})
    assert query.status == 200
    qid = query.body["query_id"]
    many = [i for i in sample["images"] if i != sample["candidate"]][:300]
    out = unchanged(neo4j_driver, lambda: served.post("/like", {"query_id": qid, "images": many}, timeout=5))
    assert out.status == 400 and "at most 50" in out.body["error"]
    caption = "make it black " * 4300  # 60,200 characters
    out = unchanged(neo4j_driver, lambda: served.post("/query", {"image": sample["candidate"], "text": caption},
                                                     timeout=5))
    assert out.status == 400 and "60,200 characters" in out.body["error"]
    out = served.post("/search", {"image": sample["candidate"], "text": sample["text"], "k": 1000}, timeout=5)
    assert out.status == 400 and "from 1 to 100" in out.body["error"]
    # The largest like allowed writes one edge per image and kind (LIKED_FOR, LIKED_FROM), not one per pair.
    nodes, rels = counts(neo4j_driver)
    liked = served.post("/like", {"query_id": qid, "images": many[:50], "who": "big"})
    assert liked.status == 200 and liked.body["created"] == {"LIKED_FOR": 50, "LIKED_FROM": 50}
    assert counts(neo4j_driver) == (nodes, rels + 100)


def test_search_answers_without_writing(served, sample, neo4j_driver) -> None:
    out = unchanged(neo4j_driver, lambda: served.post("/search", {"image": sample["candidate"],
                                                                  "text": sample["text"], "k": 7}))
    assert out.status == 200 and len(out.body["results"]) == 7 and all(r["reasons"] for r in out.body["results"])
    assert "query_id" not in out.body


# --- junk becomes data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sentence", ["qwerty zxcv", "match", "detach", "`", "long sleev"])
def test_a_junk_tag_is_refused_and_writes_nothing(served, sample, neo4j_driver, sentence) -> None:
    out = unchanged(neo4j_driver, lambda: served.post("/tag", {"image": sample["candidate"], "sentence": sentence}))
    assert out.status == 422 and "nothing written" in out.body["error"]


# --- likes that demote what was liked ---------------------------------------------------------------------------


def test_liked_results_move_up_and_none_moves_down(served, sample) -> None:
    query = served.post("/query", {"image": sample["candidate"], "text": sample["text"], "k": 10, "who": "shopper"})
    before = [r["id"] for r in query.body["results"]]
    liked = [before[2], before[5], before[9]]
    out = served.post("/like", {"query_id": query.body["query_id"], "images": liked, "who": "shopper"})
    assert out.status == 200
    after = [r["id"] for r in out.body["results"]]
    assert all(after.index(i) < before.index(i) for i in liked), (before, after)


# --- framing ---------------------------------------------------------------------------------------------------


def post_bytes(body: bytes, path: bytes = b"/search") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\n" + HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /search HTTP/1.1\r\n" + HEAD + b"Content-Length: -1\r\n\r\n", b"400"),
    (b"POST /search HTTP/1.1\r\n" + HEAD + b"Content-Length: abc\r\n\r\n", b"400"),
    (b"POST /search HTTP/1.1\r\n" + HEAD + b"Content-Length: 100000000\r\n\r\n", b"413"),
    (b"POST /search HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
     + (b"10000\r\n" + b"x" * 65536 + b"\r\n") * 2 + b"0\r\n\r\n", b"413"),
    (post_bytes(b'{"image": "\xff", "text": "x"}'), b"400"),  # not UTF-8
    (post_bytes(b'{"image": "\\ud800", "text": "x"}'), b"400"),  # a lone surrogate
    (post_bytes(b'{"image": ' + b"[" * 30000 + b"]" * 30000 + b"}"), b"400"),  # nested 30,000 deep
    (post_bytes(b"[1, 2]"), b"400"),  # not an object
    (b"GARBAGE\r\n\r\n", b"400"),
], ids=["negative length", "non-numeric length", "too long", "chunked too long", "not utf-8", "lone surrogate",
        "deep nesting", "not an object", "garbage"])
def test_each_malformed_request_is_answered(served, request_bytes, status) -> None:
    out, _ = raw(served.port, request_bytes)
    assert out.startswith(b"HTTP/1.1 " + status), out[:300]


def test_a_body_shorter_than_its_length_is_answered_and_not_run(served, sample, neo4j_driver) -> None:
    body = json.dumps({"image": sample["candidate"], "text": "in black"}).encode()
    request = b"POST /query HTTP/1.1\r\n" + HEAD + b"Content-Length: %d\r\n\r\n" % (len(body) + 50) + body
    out, seconds = unchanged(neo4j_driver, lambda: raw(served.port, request))
    assert out.startswith(b"HTTP/1.1 408") and seconds < 8
    # The client giving up early: the request is not run either.
    before = counts(neo4j_driver)
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(request)
    time.sleep(SERVE_CONFIG["body_timeout_s"] + 1)
    assert counts(neo4j_driver) == before


def test_half_open_and_slow_connections_are_closed_and_hold_nothing(served, sample) -> None:
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(300)]
    slow = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    try:
        slow.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head that never ends
        # Meanwhile a normal request is answered at once.
        out = served.post("/search", {"image": sample["candidate"], "text": sample["text"], "k": 3}, timeout=5)
        assert out.status == 200
        time.sleep(SERVE_CONFIG["header_timeout_s"] + 1.5)
        closed = 0
        for sock in idle:
            sock.settimeout(5)
            closed += sock.recv(1) == b""  # the server closed it
        assert closed == len(idle)
        slow.settimeout(5)
        assert slow.recv(100).startswith(b"HTTP/1.1 408")
    finally:
        for sock in [*idle, slow]:
            sock.close()
