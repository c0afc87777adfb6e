"""The session `tailor serve` holds, on a real trained model and a real Neo4j: likes never demote what was
liked, reads never wait for a sync, limits refuse before anything is written, junk tags are refused, a full
sync repairs a damaged index, and Neo4j errors become DatabaseUnavailableError."""

from __future__ import annotations

import os
import threading

import pytest

from engine.errors import ArtifactError, InvalidRequestError, UnknownIdError
from engine.published import EngineStore
from engine.session import InteractiveSession, never_demote
from engine.workspace import Workspace
from graphdb.export import composed_queries
from tests.helpers import counts

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def session(catalog_home, neo4j_driver):
    s = InteractiveSession(Workspace(catalog_home), neo4j_driver)
    yield s
    s.close()


def _test_queries(driver, engine, n: int):
    queries = [q for q in composed_queries(driver, "test") if q.candidate in engine.bundle.image_row]
    step = max(1, len(queries) // n)
    return queries[::step][:n]


# --- likes never demote ----------------------------------------------------------------------------------


def test_never_demote_puts_liked_images_first_in_the_order_they_were_liked() -> None:
    hits = [(f"i{n}", 1.0 - n / 100) for n in range(1, 21)]  # i1 best
    ordered = never_demote(hits, ["i7", "i2"], 10)
    assert [i for i, _, _ in ordered[:4]] == ["i7", "i2", "i1", "i3"] and len(ordered) == 10
    assert [liked for *_, liked in ordered[:3]] == [True, True, False]
    # Liked images the search did not return are kept (with no score), never dropped.
    ordered = never_demote(hits[:5], ["zz", "y", "x", "w"], 3)
    assert ordered[0] == ("zz", None, True) and len(ordered) == 4


def test_liked_images_never_rank_lower_for_the_query_they_were_liked_for(session, neo4j_driver) -> None:
    for q in _test_queries(neo4j_driver, session.engine, 6):
        answer = session.query(q.candidate, q.text, k=10, who="liker")
        before = [r["id"] for r in answer["results"]]
        liked = [before[1], before[6], before[9]]  # a high one, a middle one, the last
        out = session.like(answer["query_id"], liked, who="liker")
        after = [r["id"] for r in out["results"]]
        for image in liked:
            assert image in after and after.index(image) <= before.index(image), (q.text, before, after)
        assert out["ranks_before"] == {i: before.index(i) + 1 for i in liked}
        assert [r["liked"] for r in out["results"][:3]] == [True] * 3
        # A second like (another person, one more image) demotes none of the first three either.
        more = [i for i in after if i not in liked][4]
        again = [r["id"] for r in session.like(answer["query_id"], [more], who="other")["results"]]
        for image in [*liked, more]:
            assert again.index(image) <= after.index(image)


# --- reads never wait for writes -------------------------------------------------------------------------


def test_searches_and_queries_do_not_wait_for_a_running_sync(session, neo4j_driver) -> None:
    q = _test_queries(neo4j_driver, session.engine, 1)[0]
    done: dict[str, object] = {}

    def read() -> None:
        done["search"] = session.search(q.candidate, q.text, k=5)
        done["query"] = session.query(q.candidate, q.text, k=5, who="reader")
        done["answer"] = session.answer(done["query"]["query_id"], k=5)

    with session._sync_lock:  # as a sync holds it while it runs
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=60)
        assert not reader.is_alive(), "a read waited for the sync"
    assert len(done["search"]["results"]) == 5 and done["query"]["query_id"].startswith("q-")


def test_a_write_that_a_running_sync_already_read_shares_its_answer(session, neo4j_driver) -> None:
    import time

    first = session._sync(written_at=time.monotonic())
    assert first["shared"] is False
    shared = session._sync(written_at=time.monotonic() - 3600)  # written before the last sync began
    assert shared["shared"] is True and shared["refresh"] == first["refresh"]


# --- limits and junk ---------------------------------------------------------------------------------------


def test_warm_up_plans_the_sync_reads_and_writes_nothing(session, neo4j_driver) -> None:
    session.sync()  # as `tailor serve` does before it warms up: the base graph a local sync starts from
    before = counts(neo4j_driver)
    assert "sync reads planned" in session.warm_up()
    assert counts(neo4j_driver) == before


def test_limits_refuse_before_anything_is_written(session, neo4j_driver) -> None:
    q = _test_queries(neo4j_driver, session.engine, 1)[0]
    answer = session.query(q.candidate, q.text, k=5, who="limits")
    before = counts(neo4j_driver)
    limits = session.limits
    with pytest.raises(InvalidRequestError, match=f"at most {limits.max_like_images} images"):
        session.like(answer["query_id"], list(session.engine.bundle.image_ids[:limits.max_like_images + 1]))
    with pytest.raises(InvalidRequestError, match=f"k must be from 1 to {limits.max_k}"):
        session.query(q.candidate, q.text, k=limits.max_k + 1)
    with pytest.raises(InvalidRequestError, match="60,000 characters"):
        session.query(q.candidate, "black " * 10_000)
    with pytest.raises(UnknownIdError, match="no-such-image"):
        session.query("no-such-image", "in black")
    assert counts(neo4j_driver) == before


def test_a_full_like_writes_one_edge_per_image_not_per_pair(session, neo4j_driver) -> None:
    q = _test_queries(neo4j_driver, session.engine, 1)[0]
    answer = session.query(q.candidate, q.text, k=5, who="big")
    n = session.limits.max_like_images
    images = [i for i in session.engine.bundle.image_ids if i != q.candidate][:n]
    nodes, rels = counts(neo4j_driver)
    out = session.like(answer["query_id"], images, who="big")
    assert out["created"] == {"LIKED_FOR": n, "LIKED_FROM": n}
    assert counts(neo4j_driver) == (nodes, rels + 2 * n)  # the set: 2n edges; pairs would be n(n-1)/2 more


@pytest.mark.parametrize("sentence", ["qwerty zxcv", "match", "detach", "it has a `", "long sleev",
                                      "it has zxcv", "MATCH (n) DETACH DELETE n", "i like it"])
def test_a_sentence_without_an_attribute_is_refused_and_writes_nothing(session, neo4j_driver, sentence) -> None:
    image = session.engine.bundle.image_ids[0]
    before = counts(neo4j_driver)
    with pytest.raises(InvalidRequestError, match="nothing written"):
        session.tag(sentence, image, who="junk")
    assert counts(neo4j_driver) == before


def test_a_plausible_new_attribute_is_added(session, neo4j_driver) -> None:
    image = session.engine.bundle.image_ids[1]
    out = session.tag("that one has long sleeves", image, who="tagger")
    assert [t["attribute"] for t in out["tags"]] == ["long sleeves"] and out["refused"] == []


# --- repair ------------------------------------------------------------------------------------------------


def test_sync_full_rebuilds_a_corrupt_bundle_and_index(catalog_home, neo4j_driver, session) -> None:
    q = _test_queries(neo4j_driver, session.engine, 1)[0]
    session.sync()
    session.live.flush()
    expected = session.search(q.candidate, q.text, k=10)["results"]
    ws = Workspace(catalog_home)
    generation = EngineStore(ws.engine).current()
    for name in ("images.faiss", "bundle.pt"):
        path = generation / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2: len(data) // 2 + 65536] = os.urandom(min(65536, len(data) // 2))
        os.chmod(path, 0o600)
        path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="images.faiss|bundle.pt"):
        InteractiveSession(ws, neo4j_driver)
    repairing = InteractiveSession(ws, neo4j_driver, repair=True)
    try:
        with pytest.raises(ArtifactError, match="sync --full"):
            repairing.search(q.candidate, q.text)
        report = repairing.sync(full=True)
        assert report["repaired"] and report["refresh"] == "full"
        got = repairing.search(q.candidate, q.text, k=10)["results"]
    finally:
        repairing.close()
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-5)
    reloaded = InteractiveSession(ws, neo4j_driver)  # the rebuilt generation verifies
    reloaded.close()

