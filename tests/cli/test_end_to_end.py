"""The whole loop through the CLI on a real slice of myntra-small and a real Neo4j:
load -> train -> search -> query -> like -> tag -> explain -> sync, then the same over `tailor serve`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from engine.published import EngineStore
from readers.datasets import myntra_catalog
from tests.web.conftest import ServeProcess

pytestmark = pytest.mark.neo4j
CATALOG = myntra_catalog()
runner = CliRunner()


def _invoke(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, f"tailor {' '.join(args)} failed:\n{result.output}"
    return result.output


def _json(env: dict[str, str], *args: str) -> dict:
    out = _invoke(env, *args, "--json")
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not CATALOG.exists(), reason="needs ../shared/datasets/myntra-small")
def test_load_train_search_interact(empty_graph, neo4j_target, tmp_path: Path) -> None:
    settings = neo4j_target.settings
    env = {"NEO4J_URI": settings.uri, "NEO4J_USER": settings.user, "NEO4J_PASSWORD": settings.password,
           "TAILOR_HOME": str(tmp_path / "home")}
    _invoke(env, "load", "catalog", str(CATALOG), "--limit", "400")
    _invoke(env, "train", "--epochs", "2")
    generation = EngineStore(tmp_path / "home" / "engine").current()
    assert {"manifest.json", "images.faiss", "model.pt", "bundle.pt", "ranker.json", "facts.npz"} <= {
        p.name for p in generation.iterdir()}

    # A test query from the saved split: its candidate and caption.
    records, _, _ = empty_graph.execute_query(
        "MATCH (c:Caption)-[:MODIFIES]->(i:Image) RETURN c.text AS text, i.id AS candidate ORDER BY c.id LIMIT 1")
    candidate, text = records[0]["candidate"], records[0]["text"]
    found = _json(env, "search", "--image", candidate, "--text", text, "-k", "5")
    ids = [r["id"] for r in found["results"]]
    assert len(ids) == 5 and candidate not in ids
    assert Path(found["picture"]).exists()

    answer = _json(env, "query", "--image", candidate, "--text", text, "-k", "5")
    query_id = answer["query_id"]
    assert [r["id"] for r in answer["results"]] == ids  # same model, same index: same ranking
    assert all(r["reasons"] for r in answer["results"])
    # The reasons are the second stage's facts with their weights, and they add up to the order.
    totals = [sum(f["weight"] for f in r["facts"]) for r in answer["results"]]
    assert all(r["facts"] and len(r["facts"]) == len(r["reasons"]) for r in answer["results"])
    assert all(a >= b - 0.05 for a, b in zip(totals, totals[1:], strict=False))  # tiny facts are not shown

    liked = _json(env, "like", "--query", query_id, "--images", f"{ids[3]},{ids[4]}")
    assert liked["created"] == {"LIKED_FOR": 2, "LIKED_FROM": 2}
    assert [r["id"] for r in liked["results"][:2]] == [ids[3], ids[4]]  # liked results first
    assert liked["changed_images"] >= 2  # the liked images now receive messages
    assert liked["refresh"] == "full"  # the first sync reads the base graph whole, later ones what changed
    assert len(liked["results"]) == 10 and candidate not in {r["id"] for r in liked["results"]}  # asked again

    after = _json(env, "search", "--image", candidate, "--text", text, "-k", "5")
    assert [r["id"] for r in after["results"]] != ids or after["results"] != found["results"]

    why = _json(env, "explain", "--query", query_id, "--result", ids[3])
    assert why["facts"] and "MATCH" in why["cypher"]

    tagged = _json(env, "tag", "that one has long sleeves", "--image", candidate)
    assert any(t["attribute"] == "long sleeves" for t in tagged["tags"])
    assert tagged["refresh"] == "incremental" and tagged["changed_images"] >= 1
    counts, _, _ = empty_graph.execute_query(
        "MATCH (:Image {id: $id})-[t:USER_TAGGED]->(:Attribute {name: 'long sleeves'}) RETURN count(t) AS n",
        id=candidate)
    assert counts[0]["n"] == 1

    hostile = "'}) DETACH DELETE n //"
    before, _, _ = empty_graph.execute_query("MATCH (n) RETURN count(n) AS n")
    stored = _json(env, "query", "--image", candidate, "--text", hostile, "-k", "3")
    texts, _, _ = empty_graph.execute_query("MATCH (c:Caption {id: $id}) RETURN c.text AS t",
                                            id=stored["query_id"])
    assert texts[0]["t"] == hostile
    # Nothing in it is a change: answered by looks (rule 3), and every result says so.
    assert stored["fallback"] == "looks" and stored["roles"]["confidence"] == 0.0
    assert all("no change understood" in r["reasons"][0] for r in stored["results"])
    after_count, _, _ = empty_graph.execute_query("MATCH (n) RETURN count(n) AS n")
    assert after_count[0]["n"] == before[0]["n"] + 1  # the caption node, nothing deleted

    assert "incremental:" in _invoke(env, "sync")  # the stored hostile query is the only change
    # A damaged index is refused by name, and `sync --full` rebuilds it from the model and the database.
    index_file = EngineStore(tmp_path / "home" / "engine").current() / "images.faiss"
    damaged = bytearray(index_file.read_bytes())
    damaged[len(damaged) // 2:len(damaged) // 2 + 4096] = bytes(4096)
    index_file.write_bytes(bytes(damaged))
    refused = runner.invoke(app, ["search", "--image", candidate, "--text", text], env=env)
    assert refused.exit_code == 4 and "images.faiss" in refused.output
    repaired = _invoke(env, "sync", "--full")
    assert "full:" in repaired and "rebuilt" in repaired
    assert _json(env, "search", "--image", candidate, "--text", text, "-k", "5")["results"]

    # The same interactions over HTTP (`tailor serve`, a process of its own), with the engine loaded once.
    server = ServeProcess(tmp_path / "home", settings, tmp_path / "serve.log").start()
    try:
        answer = server.post("/query", {"image": candidate, "text": text, "k": 5, "who": "web"})
        assert answer.status == 200 and len(answer.body["results"]) == 5
        assert answer.body["query_id"].startswith("q-")
        picks = [r["id"] for r in answer.body["results"][3:5]]
        liked = server.post("/like", {"query_id": answer.body["query_id"], "images": picks, "who": "web"})
        assert liked.status == 200 and liked.body["refresh"] == "incremental"
        assert liked.body["created"]["LIKED_FOR"] == 2
        why = server.get(f"/explain?query={answer.body['query_id']}&result={picks[0]}")
        assert why.status == 200 and why.body["facts"]

        before, _, _ = empty_graph.execute_query("MATCH ()-[r]->() RETURN count(r) AS n")
        missing = server.post("/query", {"image": candidate})
        assert (missing.status, missing.body) == (400, {"error": "missing field 'text'"})
        assert server.post("/query", {"image": candidate, "text": "x", "k": "5"}).status == 400
        refused = server.post("/like", {"query_id": "no-such-query", "images": picks})
        assert refused.status == 422 and "no-such-query" in refused.body["error"]
        after_bad, _, _ = empty_graph.execute_query("MATCH ()-[r]->() RETURN count(r) AS n")
        assert after_bad[0]["n"] == before[0]["n"]  # refused requests wrote nothing
    finally:
        server.stop()

    # The paper's interaction experiments, one command each, on attributes predicted from the pixels.
    _invoke(env, "attributes", "train", "--epochs", "5")
    cv_dir = tmp_path / "cv"
    _invoke(env, "attributes", "cv", "--folds", "2", "--report", str(cv_dir))
    cv = json.loads((cv_dir / "cv.json").read_text())
    test_ids = {r["id"] for r in empty_graph.execute_query("MATCH (i:Image {split: 'test'}) RETURN i.id AS id")[0]}
    scored = {p["id"] for p in cv["predictions"]}
    assert scored and not scored & test_ids and cv["held_out_images"] == len(scored)
    assert (cv_dir / "cv.md").exists() and (cv_dir / "colour_mistakes.png").exists()
    _invoke(env, "attributes", "predict", "--folds", "2")
    report = tmp_path / "experiments"
    _invoke(env, "experiment", "likes", "--epochs", "1", "--examples", "20", "--out", str(report))
    likes = json.loads((report / "likes.json").read_text())
    assert likes["examples"] == 20 and likes["edges"]["LIKED_FOR"] == 200 and (report / "likes.png").exists()
    _invoke(env, "experiment", "more-metadata", "--epochs", "1", "--out", str(report))
    rows = json.loads((report / "more_metadata.json").read_text())["rows"]
    assert [r["name"] for r in rows][:2] == ["predicted attributes", "top 5 tagged, every image"]
    assert rows[-1]["edges"]["USER_TAGGED"] > 0 and (report / "more_metadata.png").exists()

