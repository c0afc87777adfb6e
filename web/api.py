"""The JSON API of `tailor serve`::

    POST /query    {"image": ID, "text": "...", "k": 10, "who": "..."}  -> {"query_id", "results": [...]}
    POST /search   {"image": ID, "text": "...", "k": 10}               -> {"results": [...]}, stores nothing
    POST /like     {"query_id": QID, "images": [ID, ...], "who": "...", "k": 10}
    POST /tag      {"image": ID, "sentence": "...", "who": "..."}
    POST /sync     {"full": false}
    GET  /explain?query=QID&result=ID
    GET  /health   -> 200 when Neo4j and the index are fine, else 503 saying which is not

Bodies are JSON objects: a missing, mistyped, unknown, too long or out-of-range field is a 400 naming it;
an unknown id, or a sentence with no attribute in it, a 422 with the reason; Neo4j unreachable a 503 within
a few seconds (what was done is in the message). Nothing is written for a 4xx. Requests that only read the
engine (search, explain, health) run on their own threads, so they never queue behind writes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from engine.config import ServeConfig
from engine.session import InteractiveSession
from web.errors import BadRequest, Busy
from web.limits import Fields, read_json


class Workers:
    """Engine work on threads, reads and writes on separate pools, each call within a time limit. A call
    past its limit is answered with a 503; its thread finishes the work (threads cannot be stopped), which
    the limits on a request keep short."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    def _limiter(self, kind: str) -> anyio.CapacityLimiter:
        if kind not in self._limiters:  # created on first use, inside the event loop
            size = self.config.read_threads if kind == "read" else self.config.write_threads
            self._limiters[kind] = anyio.CapacityLimiter(size)
        return self._limiters[kind]

    async def run(self, kind: str, work: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        limit = timeout or self.config.request_timeout_s
        try:
            with anyio.fail_after(limit):
                return await anyio.to_thread.run_sync(functools.partial(work, *args), limiter=self._limiter(kind),
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise Busy(f"the request took longer than {limit:g} s and was left to finish on its own; a write "
                       "may still take effect (ask again to see)") from None


def routes(session: InteractiveSession, config: ServeConfig) -> list[BaseRoute]:
    """The API's routes (registered by :func:`web.app.create_app`)."""
    workers = Workers(config)
    k_field = functools.partial(Fields.integer, name="k", default=10, low=1, high=config.max_k)

    async def body(request: Request, *allowed: str) -> Fields:
        return Fields(await read_json(request, config), config, allowed)

    async def query(request: Request) -> JSONResponse:
        f = await body(request, "image", "text", "k", "who")
        args = f.ident("image"), f.text("text"), k_field(f), f.ident("who", "api")
        return JSONResponse(await workers.run("write", session.query, *args))

    async def search(request: Request) -> JSONResponse:
        f = await body(request, "image", "text", "k")
        args = f.ident("image"), f.text("text"), k_field(f)
        return JSONResponse(await workers.run("read", session.search, *args))

    async def like(request: Request) -> JSONResponse:
        f = await body(request, "query_id", "images", "who", "k")
        args = (f.ident("query_id"), f.idents("images", config.max_like_images), f.ident("who", "api"),
                k_field(f))
        return JSONResponse(await workers.run("write", session.like, *args))

    async def tag(request: Request) -> JSONResponse:
        f = await body(request, "image", "sentence", "who")
        args = f.text("sentence"), f.ident("image"), f.ident("who", "api")
        return JSONResponse(await workers.run("write", session.tag, *args))

    async def sync(request: Request) -> JSONResponse:
        f = await body(request, "full")
        full = f.boolean("full", False)
        return JSONResponse(await workers.run("write", session.sync, full, timeout=config.sync_timeout_s))

    async def explain(request: Request) -> JSONResponse:
        params = request.query_params
        unknown = sorted(set(params) - {"query", "result"})
        if unknown or not params.get("query") or not params.get("result"):
            raise BadRequest("explain needs ?query=QID&result=ID" + (f" (unknown {unknown[0]!r})" if unknown else ""))
        ids = Fields(dict(params), config, ("query", "result"))
        args = ids.ident("query"), ids.ident("result")
        return JSONResponse(await workers.run("read", session.explain, *args))

    async def health(request: Request) -> JSONResponse:
        report = await workers.run("read", session.health)
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return [
        Route("/query", query, methods=["POST"]),
        Route("/search", search, methods=["POST"]),
        Route("/like", like, methods=["POST"]),
        Route("/tag", tag, methods=["POST"]),
        Route("/sync", sync, methods=["POST"]),
        Route("/explain", explain, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
