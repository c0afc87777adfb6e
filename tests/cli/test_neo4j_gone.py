"""`tailor load` when Neo4j goes away mid-load (a real Neo4j behind a forwarder the test cuts): a restart
within the driver's retry time is ridden out; a longer outage ends the command with one clear message (no
traceback), and running it again completes the load exactly (nothing lost or doubled)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from cli.app import app
from readers.datasets import myntra_catalog
from tests.helpers import TcpProxy, counts, scalar

pytestmark = pytest.mark.neo4j
CATALOG = myntra_catalog()
LIMIT = 300


def _env(neo4j_target, proxy: TcpProxy, home) -> dict[str, str]:
    s = neo4j_target.settings
    return {"NEO4J_URI": f"bolt://127.0.0.1:{proxy.port}", "NEO4J_USER": s.user, "NEO4J_PASSWORD": s.password,
            "TAILOR_HOME": str(home)}


def _cut_when_loading(driver, proxy: TcpProxy, back_after: float | None) -> threading.Thread:
    def cut() -> None:
        deadline = time.monotonic() + 120
        while scalar(driver, "MATCH (i:Image) RETURN count(i)") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.down()
        if back_after is not None:
            time.sleep(back_after)
            proxy.up()

    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not CATALOG.exists(), reason="needs myntra-small (TAILOR_DATASETS)")
def test_a_load_rides_out_a_restart_and_says_so_when_neo4j_stays_away(empty_graph, neo4j_target, tmp_path) -> None:
    bolt = urlparse(neo4j_target.settings.uri)
    proxy = TcpProxy(bolt.hostname, bolt.port)
    args = ["load", "catalog", str(CATALOG), "--limit", str(LIMIT), "--batch-size", "50"]
    runner = CliRunner()
    try:
        # A clean load, for the counts a complete one leaves.
        env = _env(neo4j_target, proxy, tmp_path / "home")
        assert runner.invoke(app, args, env=env).exit_code == 0
        complete = counts(empty_graph)
        from graphdb.maintenance import delete_everything

        delete_everything(empty_graph)
        # Neo4j gone for a moment: the driver retries and the load completes.
        cutter = _cut_when_loading(empty_graph, proxy, back_after=2.0)
        result = runner.invoke(app, args, env=env)
        cutter.join()
        assert result.exit_code == 0, result.output
        assert counts(empty_graph) == complete
        delete_everything(empty_graph)
        # Neo4j gone for good: one message that says what to do, no traceback.
        cutter = _cut_when_loading(empty_graph, proxy, back_after=None)
        result = runner.invoke(app, args, env=env)
        cutter.join()
        assert result.exit_code == 5, result.output
        assert "went away" in result.output and "rerun" in result.output and "Traceback" not in result.output
        partial = counts(empty_graph)
        assert partial[0] < complete[0]
        proxy.up()
        assert runner.invoke(app, args, env=env).exit_code == 0  # the rerun finishes it, nothing doubled
        assert counts(empty_graph) == complete
    finally:
        proxy.down()
