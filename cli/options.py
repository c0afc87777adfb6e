"""Options shared by commands: where the database is. Passwords never come from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphdb.settings import DEFAULT_BOLT_PORT, DEFAULT_HTTP_PORT

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Local Neo4j data directory (default: $TAILOR_HOME/neo4j)."),
]
BoltPort = Annotated[int, typer.Option("--bolt-port", help="Bolt port on 127.0.0.1.")]
HttpPort = Annotated[int, typer.Option("--http-port", help="HTTP port on 127.0.0.1 (Neo4j Browser).")]
Uri = Annotated[
    str | None,
    typer.Option("--uri", help="Neo4j URI; default $NEO4J_URI, else the local server. Password: $NEO4J_PASSWORD."),
]
User = Annotated[str | None, typer.Option("--user", help="Neo4j user; default $NEO4J_USER or neo4j.")]

DEFAULTS = {"bolt_port": DEFAULT_BOLT_PORT, "http_port": DEFAULT_HTTP_PORT}
