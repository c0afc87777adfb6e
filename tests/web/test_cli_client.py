"""`tailor query | like | tag` through a running `tailor serve` (found by $TAILOR_HOME/serve.json), on a
path that loads neither torch nor the engine; without a server they run as before."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from tests.helpers import scalar
from tests.web.conftest import ROOT, ServeProcess

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def served(catalog_home, neo4j_target, tmp_path_factory) -> ServeProcess:
    server = ServeProcess(catalog_home, neo4j_target.settings, tmp_path_factory.mktemp("serve") / "serve.log")
    server.start()
    server.url = f"http://127.0.0.1:{server.port}"
    deadline = time.monotonic() + 10
    while not (catalog_home / "serve.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # written as soon as uvicorn listens, by a thread beside it
    yield server
    server.stop()


def tailor(served: ServeProcess, *args: str, importtime: bool = False) -> subprocess.CompletedProcess:
    s = served.settings
    env = {**os.environ, "TAILOR_HOME": str(served.home), "NEO4J_URI": s.uri, "NEO4J_USER": s.user,
           "NEO4J_PASSWORD": s.password, "PYTHONPATH": str(ROOT)}
    python = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "cli"]
    return subprocess.run([*python, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def candidate(served, neo4j_driver) -> str:
    return scalar(neo4j_driver, "MATCH (c:Caption {split: 'test'})-[:MODIFIES]->(i:Image) RETURN i.id ORDER BY c.id "
                                "LIMIT 1")


def test_query_like_and_tag_are_answered_by_the_server(served, candidate, neo4j_driver, tmp_path):
    answer = _json(tailor(served, "query", "--image", candidate, "--text", "in black", "-k", "5", "--json"))
    assert answer["server"] == served.url and answer["query_id"].startswith("q-") and len(answer["results"]) == 5
    assert all(r["reasons"] for r in answer["results"])
    assert scalar(neo4j_driver, "MATCH (c:Caption {id: $q}) RETURN c.who", q=answer["query_id"]) == "cli"

    picks = [r["id"] for r in answer["results"][3:5]]
    liked = _json(tailor(served, "like", "--query", answer["query_id"], "--images", ",".join(picks), "--json"))
    assert liked["server"] == served.url and liked["created"]["LIKED_FOR"] == 2
    assert scalar(neo4j_driver, "MATCH (:Image)-[l:LIKED_FOR {who: 'cli'}]->(:Caption {id: $q}) RETURN count(l)",
                  q=answer["query_id"]) == 2

    colour = scalar(neo4j_driver, "MATCH (a:Attribute {kind: 'colour'}) WHERE NOT EXISTS "
                                  "{ (:Image {id: $i})-[:HAS_ATTRIBUTE]->(a) } RETURN a.name ORDER BY a.name LIMIT 1",
                    i=candidate)
    tagged = _json(tailor(served, "tag", f"that one is {colour}", "--image", candidate, "--json"))
    assert tagged["server"] == served.url and [t["attribute"] for t in tagged["tags"]] == [colour]

    # The same output as the full command, and its picture when asked for.
    picture = tmp_path / "answer.png"
    shown = tailor(served, "query", "--image", candidate, "--text", "in black", "-k", "3", "--picture", str(picture))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("query q-") and "  1. " in shown.stdout and f"picture: {picture}" in shown.stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Errors keep their exit codes: an unknown id is the request's fault.
    refused = tailor(served, "query", "--image", "no-such-image", "--text", "in black")
    assert refused.returncode == 2 and "no-such-image" in refused.stderr


def test_the_client_path_loads_no_torch_neo4j_or_typer(served, candidate):
    done = tailor(served, "query", "--image", candidate, "--text", "in black", "--json", importtime=True)
    assert _json(done)["server"] == served.url
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & {"torch", "neo4j", "typer", "rich", "numpy", "faiss", "engine", "gnn"}, sorted(imported)


def test_local_runs_here_and_the_server_file_goes_when_the_server_stops(served, candidate):
    local = _json(tailor(served, "query", "--image", candidate, "--text", "in black", "-k", "3", "--json", "--local"))
    assert "server" not in local and len(local["results"]) == 3

    info = served.home / "serve.json"
    assert stat.S_IMODE(info.stat().st_mode) == 0o600  # it may hold the token
    assert json.loads(info.read_text())["url"] == served.url
    served.stop(signal.SIGINT)  # Ctrl-C: uvicorn shuts down, then exits as interrupted (130)
    assert served.proc.returncode in (0, 130) and not info.exists()
    after = _json(tailor(served, "query", "--image", candidate, "--text", "in black", "-k", "3", "--json"))
    assert "server" not in after and len(after["results"]) == 3  # no server: the command works as before
