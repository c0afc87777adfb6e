"""The daily catalog flow as a shop runs it from the command line: `load catalog --update --replace
--index`, `retire --index`, and the messages for ids that cannot be searched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.engine.test_catalog import FIRST, NEW, write_shop

pytestmark = pytest.mark.neo4j
runner = CliRunner()


def test_load_update_replace_index_and_retire(empty_graph, neo4j_target, tmp_path: Path) -> None:
    s = neo4j_target.settings
    env = {"NEO4J_URI": s.uri, "NEO4J_USER": s.user, "NEO4J_PASSWORD": s.password,
           "TAILOR_HOME": str(tmp_path / "home")}
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"model": {"hidden": 32, "layers": 2}, "simulation": {"enabled": False},
                                  "train": {"batch_size": 128, "negatives": 32}}))

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, f"tailor {' '.join(args)}:\n{result.output}"
        return result.output

    folder = tmp_path / "shop"
    ok("load", "catalog", str(write_shop(folder, FIRST, "products.csv")))
    ok("train", "--epochs", "1", "--config", str(config))

    # A day later: 12 new products, one renamed, one gone; one command brings it all to the index.
    rows = [p if p[0] != 101 else (101, "Acme", "Black", "Tshirts") for p in FIRST + NEW if p[0] != 171]
    refused = runner.invoke(app, ["load", "catalog", str(write_shop(folder, rows, "products.csv"))], env=env)
    assert refused.exit_code == 1 and "--update" in refused.output and "'101'" in refused.output
    out = ok("load", "catalog", str(folder / "products.csv"), "--update", "--replace", "--index")
    assert "12 new products, 1 changed, 1 retired" in out
    assert "12 products indexed, 1 left the index" in out and "12 computed" in out
    found = json.loads(ok("search", "--image", "900", "--text", "replace red with blue", "--json").splitlines()[-1])
    assert len(found["results"]) == 10 and "171" not in {r["id"] for r in found["results"]}

    retired = json.loads(ok("retire", "900", "--index", "--json").splitlines()[-1])
    assert retired["retired"] == 1 and retired["sync"]["catalog"]["removed_image_ids"] == ["900"]
    gone = runner.invoke(app, ["query", "--image", "900", "--text", "replace red with blue"], env=env)
    assert gone.exit_code == 2 and "not in the graph" in gone.output
    unknown = runner.invoke(app, ["retire", "nope"], env=env)
    assert unknown.exit_code == 2 and "'nope'" in unknown.output and "nothing retired" in unknown.output
