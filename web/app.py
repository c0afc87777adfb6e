"""The ASGI app of `tailor serve`: one place where routes are registered and guarded.

A route module has ``routes(session, config) -> list[starlette.routing.BaseRoute]``; to add pages or
static files, add the module to :data:`ROUTE_MODULES`. Every route sits behind :class:`RequestGuard` (Host,
token, Origin, Content-Type, requests in progress) and answers errors through :mod:`web.errors`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from engine.config import ServeConfig
from engine.session import InteractiveSession
from web import api, pages
from web.errors import exception_handlers
from web.security import RequestGuard

ROUTE_MODULES = (api, pages)


def create_app(session: InteractiveSession, settings: ServeConfig | None = None) -> Starlette:
    """The app over one session (the engine stays loaded; the caller closes the session)."""
    settings = settings or session.limits
    routes: list[BaseRoute] = []
    for module in ROUTE_MODULES:
        routes += module.routes(session, settings)
    app = Starlette(routes=routes, middleware=[Middleware(RequestGuard, config=settings)],
                    exception_handlers=exception_handlers())
    app.state.session = session
    app.state.config = settings
    return app
