"""Opening a driver: explicit settings, then the environment, then the local server (started on demand)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neo4j import Driver, GraphDatabase

from graphdb.settings import (
    DEFAULT_BOLT_PORT,
    DEFAULT_HTTP_PORT,
    DriverTimeouts,
    Neo4jSettings,
    default_data_dir,
    settings_from_env,
)


def local_settings(
    data_dir: Path | None = None,
    bolt_port: int = DEFAULT_BOLT_PORT,
    http_port: int = DEFAULT_HTTP_PORT,
    start: bool = True,
) -> Neo4jSettings:
    """Settings for the local server in ``data_dir``, starting it when it is not running."""
    from graphdb.server.manager import LocalServer, ServerError

    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    server = LocalServer(data_dir, bolt_port=bolt_port, http_port=http_port)
    status = server.status()
    if not status.running:
        if not start:
            raise ServerError(f"the local Neo4j in {data_dir} is not running; start it with `tailor db start`")
        status = server.start()
    return Neo4jSettings(
        uri=status.uri, password=server.password(), local=True, data_dir=data_dir
    )


def resolve_settings(
    uri: str | None = None,
    user: str | None = None,
    password: str | None = None,
    data_dir: Path | None = None,
    start_local: bool = True,
) -> Neo4jSettings:
    """Explicit options, then NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD, then the local server."""
    settings = settings_from_env(uri, user, password)
    if settings is not None:
        return settings
    return local_settings(data_dir, start=start_local)


def open_driver(settings: Neo4jSettings, timeouts: DriverTimeouts | None = None) -> Driver:
    """A driver that has answered once (fails fast on a wrong password or a dead server). ``timeouts``:
    the driver's own defaults unless given (:meth:`DriverTimeouts.interactive` for a server)."""
    timeouts = timeouts or DriverTimeouts()
    # Notifications (e.g. "property key does not exist" on a fresh graph) are noise for our fixed queries.
    driver = GraphDatabase.driver(
        settings.uri, auth=(settings.user, settings.password), notifications_min_severity="OFF",
        connection_timeout=timeouts.connection, connection_acquisition_timeout=timeouts.acquisition,
        max_transaction_retry_time=timeouts.retry,
    )
    try:
        driver.verify_connectivity()
    except Exception:
        driver.close()
        raise
    return driver


@contextmanager
def session_driver(settings: Neo4jSettings, timeouts: DriverTimeouts | None = None) -> Iterator[Driver]:
    driver = open_driver(settings, timeouts)
    try:
        yield driver
    finally:
        driver.close()
