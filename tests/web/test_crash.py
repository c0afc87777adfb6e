"""A `tailor serve` killed between the two renames of a save (the new generation's folder in place, the
pointer not yet switched) comes back with the previous generation and catches up with the database at
start: its answers equal those it gave before the crash. Real server processes, real Neo4j."""

from __future__ import annotations

import signal
import time

import pytest

from engine.pipeline import load_published
from engine.published import EngineStore
from engine.workspace import Workspace
from readers.files import atomic_write
from tests.web.conftest import ServeProcess

pytestmark = pytest.mark.neo4j


def _answers(server: ServeProcess, queries: list[tuple[str, str]]) -> list[list[tuple[str, float]]]:
    out = []
    for candidate, text in queries:
        answer = server.post("/search", {"image": candidate, "text": text, "k": 10})
        assert answer.status == 200, answer.body
        out.append([(r["id"], r["score"]) for r in answer.body["results"]])
    return out


def _wait_for_new_generation(store: EngineStore, than, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = store.current()
        if current != than:
            return current
        time.sleep(0.2)
    raise AssertionError(f"no new generation after {than.name} within {timeout:.0f} s")


def _same(got, expected) -> bool:
    """The same ids in the same order, scores within float noise, for every query."""
    for g, e in zip(got, expected, strict=True):
        if [i for i, _ in g] != [i for i, _ in e]:
            return False
        if any(abs(a - b) > 1e-4 for (_, a), (_, b) in zip(g, e, strict=True)):
            return False
    return True


def test_a_crash_between_the_two_renames_is_recovered(catalog_home, neo4j_target, neo4j_driver, tmp_path) -> None:
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (c:Caption {split: 'test'})-[:MODIFIES]->(i:Image) RETURN i.id AS candidate, c.text AS text "
        "ORDER BY c.id LIMIT 30")
    queries = [(r["candidate"], r["text"]) for r in records]
    ws = Workspace(catalog_home)
    store = EngineStore(ws.engine)
    server = ServeProcess(catalog_home, neo4j_target.settings, tmp_path / "serve.log").start()
    try:
        live = store.current()  # after the start-up sync
        asked = server.post("/query", {"image": queries[0][0], "text": queries[0][1], "k": 10, "who": "crash"})
        liked = [r["id"] for r in asked.body["results"]][4:7]
        assert server.post("/like", {"query_id": asked.body["query_id"], "images": liked, "who": "crash"}).status == 200
        saved = _wait_for_new_generation(store, live)
        expected = _answers(server, queries)
    finally:
        server.stop(signal.SIGKILL)
    # What a crash after the folder's rename and before the pointer's leaves behind, plus a save that died
    # half-way through writing its folder.
    atomic_write(store.pointer, live.name + "\n")
    half = store.root / ".gen-999999-deadbeef"
    half.mkdir()
    (half / "bundle.pt").write_bytes(b"half a bundle")
    stale = load_published(ws).searcher
    stale_answers = [[(i, s) for i, s in stale.search(c, t, k=10).hits] for c, t in queries]
    assert not _same(stale_answers, expected), "the like changed no answer: the test would prove nothing"

    restarted = ServeProcess(catalog_home, neo4j_target.settings, tmp_path / "serve2.log").start()
    try:
        assert _same(_answers(restarted, queries), expected)
        # The next save numbers past the orphan, and clears the half-written folder.
        again = restarted.post("/query", {"image": queries[1][0], "text": queries[1][1], "k": 5, "who": "crash"})
        current = store.current()
        picks = [r["id"] for r in again.body["results"]][:2]
        assert restarted.post("/like", {"query_id": again.body["query_id"], "images": picks, "who": "crash"}).status == 200
        newest = _wait_for_new_generation(store, current)
        assert int(newest.name[4:]) > int(saved.name[4:]) and not half.exists()
    finally:
        restarted.stop()
