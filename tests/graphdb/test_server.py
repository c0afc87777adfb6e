"""Integration tests of tailor's local Neo4j server against the real thing (a JVM per start, no mocks).

One server is started for the module and shared; the restart test stops and starts that same server, so
the whole module costs two JVM starts. The port-taken test never gets as far as starting a JVM.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

neo4j = pytest.importorskip("neo4j")

from graphdb.server.manager import (  # noqa: E402
    MAIN_CLASS,
    LocalServer,
    ServerError,
    ServerStatus,
    load_or_create_password,
)
from tests.helpers import free_ports  # noqa: E402

pytestmark = pytest.mark.neo4j


def _java_pids_for(data_dir: Path) -> list[int]:
    """Every live process whose command line is our server's main class with this data dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if MAIN_CLASS.encode() in args and str(data_dir).encode() in args:
            pids.append(int(entry.name))
    return pids


def _driver(status: ServerStatus, password: str):
    return neo4j.GraphDatabase.driver(status.uri, auth=("neo4j", password), connection_timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, ServerStatus]]:
    data_dir = tmp_path_factory.mktemp("neo4j-server")
    bolt, http = free_ports(2)
    local = LocalServer(data_dir, bolt_port=bolt, http_port=http)
    began = time.monotonic()
    status = local.start()
    print(f"local Neo4j started in {time.monotonic() - began:.1f} s")
    try:
        yield local, status
    finally:
        local.stop()


def test_starts_and_answers_return_1(server: tuple[LocalServer, ServerStatus]) -> None:
    local, status = server
    assert status.running and not status.already_running
    assert status.uri == f"bolt://127.0.0.1:{local.bolt_port}"
    with _driver(status, local.password()) as driver:
        records, _, _ = driver.execute_query("RETURN $one AS one", one=1)
    assert records[0]["one"] == 1
    state = json.loads(local.state_file.read_text())
    assert state["pid"] == status.pid
    assert (state["bolt_port"], state["http_port"]) == (local.bolt_port, local.http_port)
    assert local.status() == ServerStatus(True, status.pid, local.bolt_port, local.http_port, local.data_dir)


def test_wrong_password_is_refused(server: tuple[LocalServer, ServerStatus]) -> None:
    local, status = server
    for wrong in ("neo4j", local.password() + "x"):  # the default password must not work either
        with _driver(status, wrong) as driver, pytest.raises(neo4j.exceptions.AuthError):
            driver.verify_connectivity()


def test_second_start_reports_already_running(server: tuple[LocalServer, ServerStatus]) -> None:
    local, status = server
    before = _java_pids_for(local.data_dir)
    assert before == [status.pid]
    # A second manager for the same data dir, as another CLI invocation would make.
    again = LocalServer(local.data_dir, bolt_port=local.bolt_port, http_port=local.http_port).start()
    assert again.running and again.already_running
    assert again.pid == status.pid and again.bolt_port == local.bolt_port
    assert _java_pids_for(local.data_dir) == before


def test_password_kept_private(server: tuple[LocalServer, ServerStatus]) -> None:
    local, status = server
    password = local.password()
    assert stat.S_IMODE(local.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(local.password_file.parent.stat().st_mode) == 0o700
    assert local.password() == password  # stable across calls
    assert status.pid is not None
    assert password.encode() not in Path(f"/proc/{status.pid}/cmdline").read_bytes()
    assert password.encode() not in Path(f"/proc/{status.pid}/environ").read_bytes()
    logs = [p for p in local.log_dir.rglob("*") if p.is_file()]
    assert local.log_file in logs and any(p.name == "debug.log" for p in logs)
    for log in logs:
        assert password.encode() not in log.read_bytes(), log


def test_browser_served_over_http(server: tuple[LocalServer, ServerStatus]) -> None:
    local, status = server
    with urllib.request.urlopen(f"http://127.0.0.1:{local.http_port}/browser/", timeout=30) as response:
        assert response.status == 200
        html = response.read().decode("utf-8", errors="replace")
    assert "<title>Neo4j Browser</title>" in html
    # The discovery document the Browser reads to find Bolt.
    with urllib.request.urlopen(f"http://127.0.0.1:{local.http_port}/", timeout=30) as response:
        discovery = json.loads(response.read())
    assert discovery["bolt_direct"] == status.uri


def test_large_unwind_batch(server: tuple[LocalServer, ServerStatus]) -> None:
    """10k rows with vectors in one UNWIND fit the transaction memory limits."""
    local, status = server
    rows = [{"id": i, "v": [float(i % 97) / 97.0] * 64} for i in range(10_000)]
    with _driver(status, local.password()) as driver:
        summary = driver.execute_query(
            "UNWIND $rows AS r CREATE (:ServerTestBatch {id: r.id, v: r.v})", rows=rows
        ).summary
        assert summary.counters.nodes_created == 10_000
        driver.execute_query("MATCH (n:ServerTestBatch) DETACH DELETE n")


def _readable_by_others(root: Path) -> list[str]:
    out = []
    for folder, _, files in os.walk(root):
        for path in [folder, *(os.path.join(folder, f) for f in files)]:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                out.append(f"{oct(stat.S_IMODE(st.st_mode))} {path}")
    return out


def test_the_data_directory_is_its_owners_only(server: tuple[LocalServer, ServerStatus]) -> None:
    local, status = server
    with _driver(status, local.password()) as driver:  # something written: store and transaction files
        driver.execute_query("UNWIND range(1, 100) AS n CREATE (:Probe {n: n})")
        driver.execute_query("MATCH (p:Probe) DELETE p")
    assert (local.data_dir / "db" / "data" / "databases").is_dir()
    assert _readable_by_others(local.data_dir) == []


def test_owner_only_tightens_what_others_could_read(tmp_path: Path) -> None:
    from graphdb.server.manager import owner_only

    data = tmp_path / "data"
    (data / "db" / "store").mkdir(parents=True)
    (data / "db" / "store" / "neostore").write_bytes(b"x")
    os.chmod(data / "db" / "store" / "neostore", 0o644)
    os.chmod(data / "db", 0o755)
    outside = tmp_path / "outside"
    outside.write_bytes(b"y")
    os.chmod(outside, 0o644)
    os.symlink(outside, data / "db" / "link")  # left alone, and not followed
    assert owner_only(data) >= 2 and _readable_by_others(data) == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


def test_stale_state_file_is_not_running(tmp_path: Path) -> None:
    # pid of this (python) process: alive, but not our java server.
    (tmp_path / "server.json").write_text(json.dumps({"pid": os.getpid(), "bolt_port": 1, "http_port": 2}))
    status = LocalServer(tmp_path).status()
    assert not status.running and status.pid is None
    assert LocalServer(tmp_path).stop() is False
    assert not (tmp_path / "server.json").exists()


def test_password_file_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    first = load_or_create_password(tmp_path)
    assert len(first) >= 20 and load_or_create_password(tmp_path) == first
    path = tmp_path / "auth" / "password"
    assert path.read_text() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["password"]  # no temp files left behind
    monkeypatch.setenv("NEO4J_PASSWORD", "short")
    with pytest.raises(ServerError, match="NEO4J_PASSWORD"):
        load_or_create_password(tmp_path)


def test_only_loopback(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="loopback"):
        LocalServer(tmp_path, host="0.0.0.0")


def test_port_taken_names_the_port(tmp_path: Path) -> None:
    bolt, http = free_ports(2)
    for taken_port in (bolt, http):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
            blocker.bind(("127.0.0.1", taken_port))
            blocker.listen(1)
            local = LocalServer(tmp_path / "data", bolt_port=bolt, http_port=http)
            with pytest.raises(ServerError, match=rf"\b{taken_port}\b"):
                local.start(timeout=60)
            assert not local.status().running
            assert _java_pids_for(local.data_dir) == []


def test_java_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    bolt, http = free_ports(2)
    with pytest.raises(ServerError, match="Java 17"):
        LocalServer(tmp_path / "data", bolt_port=bolt, http_port=http).start(timeout=60)


def test_data_survives_restart_and_stop_leaves_nothing(
    server: tuple[LocalServer, ServerStatus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stops the module's server, checks nothing is left, and starts it again with a new password."""
    local, status = server
    old_password = local.password()
    marker = f"restart-{time.time_ns()}"
    with _driver(status, old_password) as driver:
        driver.execute_query("CREATE (:ServerTestMarker {name: $name})", name=marker)

    began = time.monotonic()
    assert local.stop() is True
    print(f"stopped in {time.monotonic() - began:.1f} s")
    assert _java_pids_for(local.data_dir) == []
    assert not Path(f"/proc/{status.pid}").exists() or not Path(f"/proc/{status.pid}/cmdline").read_bytes()
    assert not local.state_file.exists()
    assert local.status().running is False
    assert "TAILOR_SERVER_STOPPED" in local.log_file.read_text()
    assert local.stop() is False  # nothing left to stop

    # NEO4J_PASSWORD wins over the stored password; the server applies it when it starts.
    new_password = "restart-" + old_password[::-1]
    monkeypatch.setenv("NEO4J_PASSWORD", new_password)
    began = time.monotonic()
    restarted = local.start()
    print(f"restarted in {time.monotonic() - began:.1f} s")
    assert restarted.running and not restarted.already_running and restarted.pid != status.pid
    assert local.password_file.read_text() == new_password
    assert stat.S_IMODE(local.password_file.stat().st_mode) == 0o600
    with _driver(restarted, old_password) as driver, pytest.raises(neo4j.exceptions.AuthError):
        driver.verify_connectivity()
    with _driver(restarted, new_password) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (m:ServerTestMarker {name: $name}) RETURN count(m) AS n", name=marker
        )
        assert records[0]["n"] == 1
        driver.execute_query("MATCH (m:ServerTestMarker) DELETE m")
    assert new_password.encode() not in Path(f"/proc/{restarted.pid}/environ").read_bytes()
    for log in (p for p in local.log_dir.rglob("*") if p.is_file()):
        content = log.read_bytes()
        assert new_password.encode() not in content and old_password.encode() not in content, log
