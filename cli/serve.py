"""`tailor serve`: the interactions as JSON over HTTP (the app is :mod:`web`), served by uvicorn on
127.0.0.1 by default.

A command pays for starting Python, torch and the engine's files (about 5 s here) before its work; a
long-running session pays once, so a like or a tag reaches the ranking in a few hundred milliseconds.
Routes, limits and checks: :mod:`web.api`, :class:`engine.config.ServeConfig`, :mod:`web.security`.
"""

from __future__ import annotations

import logging

import uvicorn

from engine.config import ServeConfig
from engine.session import InteractiveSession
from web.app import create_app
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


def serve(session: InteractiveSession, config: ServeConfig) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM); uvicorn exits the process if it cannot listen."""
    logging.getLogger("tailor.serve").setLevel(logging.INFO)
    server(session, config).run()
