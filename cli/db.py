"""`tailor db ...`: the local Neo4j server and the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from neo4j import Driver

from cli.console import console, fail, print_counts
from cli.options import BoltPort, DataDir, HttpPort, Uri, User
from graphdb.connection import open_driver, resolve_settings
from graphdb.schema import apply_schema
from graphdb.settings import DEFAULT_BOLT_PORT, DEFAULT_HTTP_PORT, DriverTimeouts, default_data_dir
from graphdb.stats import graph_summary

app = typer.Typer(help="Run the local Neo4j and manage the schema.", no_args_is_help=True)


@contextmanager
def connect(uri: str | None = None, user: str | None = None, data_dir=None,
            timeouts: DriverTimeouts | None = None) -> Iterator[Driver]:
    """A driver by the usual precedence; the schema is applied on first use (idempotent). Neo4j going
    away during the command is one clear error, not a driver traceback."""
    from neo4j.exceptions import DatabaseUnavailable, ServiceUnavailable, SessionExpired

    from graphdb.server.manager import ServerError

    try:
        settings = resolve_settings(uri=uri, user=user, data_dir=data_dir)
        driver = open_driver(settings, timeouts)
    except ServerError as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # driver errors: wrong password, unreachable server
        raise fail(f"cannot connect to Neo4j: {exc}") from exc
    try:
        apply_schema(driver, settings.database)
        yield driver
    except (ServiceUnavailable, SessionExpired, DatabaseUnavailable) as exc:
        raise fail(f"Neo4j at {settings.uri} went away during the command ({exc}). What was committed "
                   "stays (each batch is one transaction) and loads and interactions are idempotent: start "
                   "Neo4j again (`tailor db start`) and rerun the command", 5) from exc
    finally:
        driver.close()


def _server(data_dir, bolt_port: int = DEFAULT_BOLT_PORT, http_port: int = DEFAULT_HTTP_PORT):
    from graphdb.server.manager import LocalServer

    return LocalServer((data_dir or default_data_dir()).expanduser().resolve(), bolt_port, http_port)


@app.command()
def start(
    data_dir: DataDir = None, bolt_port: BoltPort = DEFAULT_BOLT_PORT, http_port: HttpPort = DEFAULT_HTTP_PORT
) -> None:
    """Start the local Neo4j (Bolt and HTTP on 127.0.0.1); waits until Bolt answers."""
    from graphdb.server.manager import ServerError

    server = _server(data_dir, bolt_port, http_port)
    try:
        with console.status("starting Neo4j ..."):
            status = server.start()
    except ServerError as exc:
        raise fail(str(exc)) from exc
    if status.already_running:
        console.print(f"already running (pid {status.pid}) at {status.uri}; nothing done")
        return
    console.print(f"[green]Neo4j running[/] pid {status.pid}")
    console.print(f"  bolt     {status.uri}")
    console.print(f"  browser  http://127.0.0.1:{status.http_port}/browser/")
    console.print(f"  user neo4j, password in {status.data_dir / 'auth' / 'password'} (mode 0600)")


@app.command()
def status(data_dir: DataDir = None) -> None:
    """Is the local Neo4j running, and where."""
    st = _server(data_dir).status()
    if not st.running:
        console.print(f"not running (data dir {st.data_dir})")
        raise typer.Exit(3)
    console.print(f"running pid {st.pid}: {st.uri}, browser http://127.0.0.1:{st.http_port}/browser/")


@app.command()
def stop(data_dir: DataDir = None) -> None:
    """Stop the local Neo4j cleanly (SIGTERM, then waits)."""
    if _server(data_dir).stop():
        console.print("stopped")
    else:
        console.print("was not running")


@app.command()
def init(uri: Uri = None, user: User = None, data_dir: DataDir = None) -> None:
    """Apply the schema (constraints and indexes); safe to run again."""
    with connect(uri, user, data_dir) as driver:
        n = apply_schema(driver)
    console.print(f"schema in place ({n} statements, all IF NOT EXISTS)")


@app.command()
def info(uri: Uri = None, user: User = None, data_dir: DataDir = None) -> None:
    """What the graph holds: nodes by label, relationships by type, attributes by kind."""
    with connect(uri, user, data_dir) as driver:
        summary = graph_summary(driver)
    print_counts("nodes", summary.nodes, "label")
    print_counts("relationships", summary.relationships, "type")
    print_counts("attributes by kind", summary.attributes_by_kind, "kind")
