"""`tailor db start|status|stop|init|info` end to end, as a user runs them (real JVM, real Bolt)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from graphdb.server.manager import MAIN_CLASS
from tests.helpers import free_ports

pytestmark = pytest.mark.neo4j
runner = CliRunner()


def _server_pids(data_dir: Path) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if MAIN_CLASS.encode() in args and str(data_dir).encode() in args:
                out.append(int(entry.name))
    return out


def test_db_start_query_browser_stop(tmp_path: Path) -> None:
    import neo4j

    data_dir = tmp_path / "db"
    bolt, http = free_ports(2)
    args = ["--data-dir", str(data_dir)]
    try:
        result = runner.invoke(app, ["db", "start", *args, "--bolt-port", str(bolt), "--http-port", str(http)])
        assert result.exit_code == 0, result.output
        assert f"bolt://127.0.0.1:{bolt}" in result.output

        again = runner.invoke(app, ["db", "start", *args, "--bolt-port", str(bolt), "--http-port", str(http)])
        assert again.exit_code == 0 and "already running" in again.output
        assert len(_server_pids(data_dir)) == 1

        status = runner.invoke(app, ["db", "status", *args])
        assert status.exit_code == 0 and f"bolt://127.0.0.1:{bolt}" in status.output

        password = (data_dir / "auth" / "password").read_text().strip()
        with neo4j.GraphDatabase.driver(f"bolt://127.0.0.1:{bolt}", auth=("neo4j", password)) as driver:
            records, _, _ = driver.execute_query("RETURN 1 AS one")
            assert records[0]["one"] == 1

        page = urllib.request.urlopen(f"http://127.0.0.1:{http}/browser/", timeout=30).read().decode()
        assert "<html" in page.lower() and "neo4j" in page.lower()

        ps = subprocess.run(["ps", "-ef"], capture_output=True, text=True, check=True).stdout
        assert password not in ps

        init = runner.invoke(app, ["db", "init", *args], env={"NEO4J_URI": ""})
        assert init.exit_code == 0, init.output
        info = runner.invoke(app, ["db", "info", *args], env={"NEO4J_URI": ""})
        assert info.exit_code == 0, info.output
    finally:
        stop = runner.invoke(app, ["db", "stop", *args])
    assert stop.exit_code == 0 and "stopped" in stop.output
    assert _server_pids(data_dir) == []
    after = runner.invoke(app, ["db", "status", *args])
    assert after.exit_code == 3 and "not running" in after.output


def test_cli_help_runs_as_console_script() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "db" in out.stdout and "load" in out.stdout
