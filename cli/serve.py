"""`tailor serve`: the interactions as JSON over HTTP (the app is :mod:`web`), served by uvicorn on
127.0.0.1 by default.

A command pays for starting Python, torch and the engine's files (about 5 s here) before its work; a
long-running session pays once, so a like or a tag reaches the ranking in a few hundred milliseconds.
Routes, limits and checks: :mod:`web.api`, :class:`engine.config.ServeConfig`, :mod:`web.security`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from engine.config import ServeConfig
from engine.session import InteractiveSession
from web.app import create_app
from web.discovery import announced
from web.limits import bounded_protocol
from web.security import check_binding


def server(session: InteractiveSession, config: ServeConfig) -> uvicorn.Server:
    """A uvicorn server for the session's app, with the config's bounds (not started)."""
    check_binding(config)
    app = create_app(session, config)
    uv = uvicorn.Config(
        app, host=config.host, port=config.port, http=bounded_protocol(config), ws="none", lifespan="off",
        loop="asyncio", interface="asgi3", timeout_keep_alive=config.keep_alive_s, access_log=False,
        log_level="warning", server_header=False, timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(uv)


def serve(session: InteractiveSession, config: ServeConfig, neo4j_uri: str | None = None) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM); uvicorn exits the process if it cannot listen. While it
    listens, ``$TAILOR_HOME/serve.json`` says where (:mod:`web.discovery`), for commands to use it;
    ``neo4j_uri``: the ``--uri`` or ``NEO4J_URI`` it was started with (commands use it only if theirs match)."""
    logging.getLogger("tailor.serve").setLevel(logging.INFO)
    uv = server(session, config)
    with announced(uv, session.ws.home, config.host, config.token, neo4j_uri):
        uv.run()


def neo4j_browser(uri: str | None, user: str | None, data_dir: Path | None,
                  browser_url: str | None) -> dict[str, str | None]:
    """Where the page's explanation links open Neo4j Browser: ``browser_url``, else the local server's
    (``http://127.0.0.1:<http-port>/browser/``, when tailor runs it); and the Bolt address for its form."""
    from graphdb.connection import resolve_settings
    from graphdb.server.manager import LocalServer

    settings = resolve_settings(uri=uri, user=user, data_dir=data_dir)
    if browser_url is None and settings.local and settings.data_dir is not None:
        status = LocalServer(settings.data_dir).status()
        if status.running and status.http_port:
            browser_url = f"http://127.0.0.1:{status.http_port}/browser/"
    bolt = settings.uri.replace("://", f"://{settings.user}@", 1) if "@" not in settings.uri else settings.uri
    return {"neo4j_browser_url": browser_url, "neo4j_bolt_uri": bolt}
