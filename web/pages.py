"""The page of `tailor serve`: the shopper's and curator's page (``web/static/``) and the JSON it reads
(``/ui/...``), over the same session as the JSON API.

    GET  /                        the page (HTML; data is filled in by web/static/app.js as text)
    GET  /static/...              its script and style sheet (files of the package, no CDN)
    GET  /ui/image/{id}           the photo of a known image id (the path comes from the index, never
                                  from the request)
    GET  /ui/find?text=&limit=    products by title words or attribute phrases
    GET  /ui/product/{id}         a product's attributes and tags
    POST /ui/step                 {"candidate", "text", "session"?, "parent"?, "k"?, "who"?}: a new step
    GET  /ui/step/{query_id}?k=   a step answered again (going back in the history)
    GET  /ui/session/{id}         a session's steps
    POST /ui/like                 {"query_id", "images", "k"?, "who"?}
    POST /ui/tag                  {"image", "sentence", "who"?}
    GET  /ui/explain?query=&result=   facts, the subgraph to draw and the Neo4j Browser link
    GET  /ui/attributes           attributes with counts (curator view)
    POST /ui/curator/merge        {"keep", "drop"}
    POST /ui/curator/remove-tag   {"image", "name", "source"?}
    POST /ui/curator/add-attribute   {"images", "name", "kind"?, "who"?}

Errors are ``{"error": "..."}``: 400 for a malformed request (the field named), 422 when the engine
refuses it (an unknown id, nothing to do), 503 when the engine or database cannot answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.browse import BrowseSession
from engine.errors import INTERACTION_ERRORS, EngineError

__all__ = ["PAGE_FILE", "PAGE_HEADERS", "STATIC_DIR", "page_routes"]

PACKAGE_DIR = Path(str(resources.files("web")))
STATIC_DIR = PACKAGE_DIR / "static"  # app.js, app.css
PAGE_FILE = PACKAGE_DIR / "index.html"  # served at / only, with PAGE_HEADERS
MAX_TEXT = 500  # characters in a change, a sentence, a search or a name
MAX_IDS = 50  # ids in one like or one curator action

# The page loads nothing but its own files; no inline script can run, even if markup slipped in.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BadRequest(ValueError):
    """A malformed request: the message names the field."""


def _text(body: dict[str, Any], name: str, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field {name!r}")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a string")
    if len(value) > limit:
        raise BadRequest(f"field {name!r} is {len(value)} characters; at most {limit}")
    if required and not value.strip():
        raise BadRequest(f"field {name!r} is empty")
    return value


def _ids(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"field {name!r} must be a non-empty list of id strings")
    if len(value) > MAX_IDS:
        raise BadRequest(f"field {name!r} has {len(value)} ids; at most {MAX_IDS}")
    return value


def _int(value: Any, name: str, low: int, high: int, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise BadRequest(f"{name!r} must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name!r} must be an integer from {low} to {high}")
    return value


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _answer(work: Callable[[], dict[str, Any]]) -> Response:
    """Run blocking engine work off the event loop; engine errors become statuses."""
    try:
        return JSONResponse(await run_in_threadpool(work))
    except BadRequest as exc:
        return _error(400, str(exc))
    except INTERACTION_ERRORS as exc:
        return _error(422, str(exc))
    except EngineError as exc:
        return _error(503, str(exc))


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _post(work: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await _body(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        return await _answer(lambda: work(body))

    return endpoint


def _get(work: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _answer(lambda: work(request))

    return endpoint


def page_routes(browse: BrowseSession) -> list[BaseRoute]:
    """The page's routes over ``browse`` (register them beside the JSON API's)."""
    config = browse.config

    def who(body: dict[str, Any]) -> str:
        return _text(body, "who", required=False, limit=80) or "web"

    async def index(request: Request) -> Response:
        return FileResponse(PAGE_FILE, media_type="text/html", headers=PAGE_HEADERS)

    def image(request: Request) -> Response:
        found = browse.image_file(request.path_params["image_id"])
        if found is None:
            return _error(404, "no image for that id")
        path, media = found
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600",
                                                             "X-Content-Type-Options": "nosniff"})

    async def image_endpoint(request: Request) -> Response:
        return await run_in_threadpool(image, request)

    def find(request: Request) -> dict[str, Any]:
        text = _text(dict(request.query_params), "text")
        limit = _int(request.query_params.get("limit"), "limit", 1, config.find_limit, config.find_limit)
        return browse.find(text, limit)

    def product(request: Request) -> dict[str, Any]:
        return browse.product(request.path_params["image_id"])

    def step(body: dict[str, Any]) -> dict[str, Any]:
        return browse.step(_text(body, "candidate", limit=200), _text(body, "text"),
                           session_id=_text(body, "session", required=False, limit=200),
                           parent=_text(body, "parent", required=False, limit=200),
                           k=_int(body.get("k"), "k", 1, config.max_results, None), who=who(body))

    def show(request: Request) -> dict[str, Any]:
        k = _int(request.query_params.get("k"), "k", 1, config.max_results, None)
        return browse.show(request.path_params["query_id"], k)

    def history(request: Request) -> dict[str, Any]:
        return browse.history(request.path_params["session_id"])

    def like(body: dict[str, Any]) -> dict[str, Any]:
        return browse.like(_text(body, "query_id", limit=200), _ids(body, "images"), who=who(body),
                           k=_int(body.get("k"), "k", 1, config.max_results, None))

    def tag(body: dict[str, Any]) -> dict[str, Any]:
        return browse.tag(_text(body, "image", limit=200), _text(body, "sentence"), who=who(body))

    def explain(request: Request) -> dict[str, Any]:
        args = dict(request.query_params)
        return browse.explain(_text(args, "query", limit=200), _text(args, "result", limit=200))

    def attributes(request: Request) -> dict[str, Any]:
        return browse.attributes()

    def merge(body: dict[str, Any]) -> dict[str, Any]:
        return browse.merge_attributes(_text(body, "keep"), _text(body, "drop"))

    def remove_tag(body: dict[str, Any]) -> dict[str, Any]:
        return browse.remove_tag(_text(body, "image", limit=200), _text(body, "name"),
                                 _text(body, "source", required=False, limit=40))

    def add_attribute(body: dict[str, Any]) -> dict[str, Any]:
        kind = _text(body, "kind", required=False, limit=40) or "curated"
        return browse.add_attribute(_ids(body, "images"), _text(body, "name"), kind, who(body))

    return [
        Route("/", index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/ui/image/{image_id}", image_endpoint, methods=["GET"]),
        Route("/ui/find", _get(find), methods=["GET"]),
        Route("/ui/product/{image_id}", _get(product), methods=["GET"]),
        Route("/ui/step", _post(step), methods=["POST"]),
        Route("/ui/step/{query_id}", _get(show), methods=["GET"]),
        Route("/ui/session/{session_id}", _get(history), methods=["GET"]),
        Route("/ui/like", _post(like), methods=["POST"]),
        Route("/ui/tag", _post(tag), methods=["POST"]),
        Route("/ui/explain", _get(explain), methods=["GET"]),
        Route("/ui/attributes", _get(attributes), methods=["GET"]),
        Route("/ui/curator/merge", _post(merge), methods=["POST"]),
        Route("/ui/curator/remove-tag", _post(remove_tag), methods=["POST"]),
        Route("/ui/curator/add-attribute", _post(add_attribute), methods=["POST"]),
    ]
