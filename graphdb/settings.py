"""Connection settings for Neo4j, resolved in one place.

Order of precedence: explicit arguments, then the environment (``NEO4J_URI``, ``NEO4J_USER``,
``NEO4J_PASSWORD``, ``NEO4J_DATABASE``), then the local server that tailor starts itself
(``graphdb.server``), whose password lives in a 0600 file in its data directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BOLT_PORT = 7687
DEFAULT_HTTP_PORT = 7474
DEFAULT_USER = "neo4j"


def tailor_home() -> Path:
    """Root for tailor's local state (database, feature cache, checkpoints); ``TAILOR_HOME`` overrides."""
    return Path(os.environ.get("TAILOR_HOME", Path.cwd() / ".tailor")).expanduser().resolve()


def default_data_dir() -> Path:
    return tailor_home() / "neo4j"


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str
    user: str = DEFAULT_USER
    password: str = field(default="", repr=False)  # never printed
    database: str | None = None
    # True when the settings point at the local server tailor manages (and may start on demand).
    local: bool = False
    data_dir: Path | None = None


@dataclass(frozen=True)
class DriverTimeouts:
    """How long the driver waits for Neo4j, in seconds. The defaults (the driver's own) suit batch work:
    loads and training ride out a restart. :meth:`interactive` is for a server, which must say "database
    unavailable" within a few seconds instead of hanging its clients."""

    connection: float = 30.0  # TCP connect and Bolt handshake
    acquisition: float = 60.0  # waiting for a connection from the pool
    retry: float = 30.0  # retrying transient failures (a deadlock, a lost connection) before giving up

    @classmethod
    def interactive(cls) -> DriverTimeouts:
        return cls(connection=1.5, acquisition=2.0, retry=2.0)


def settings_from_env(
    uri: str | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
) -> Neo4jSettings | None:
    """Settings from explicit values or the environment; ``None`` when neither names a server."""
    uri = uri or os.environ.get("NEO4J_URI")
    if not uri:
        return None
    password = password if password is not None else os.environ.get("NEO4J_PASSWORD", "")
    return Neo4jSettings(
        uri=uri,
        user=user or os.environ.get("NEO4J_USER", DEFAULT_USER),
        password=password,
        database=database or os.environ.get("NEO4J_DATABASE") or None,
    )
