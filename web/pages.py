"""The page of `tailor serve`: the shopper's and curator's page (``web/index.html``, ``web/static/``) and
the JSON it reads (``/ui/...``), over the same session as the JSON API (:mod:`web.api`).

    GET  /                        the page (HTML; web/static/app.js fills it in, data always as text)
    GET  /static/...              its script, style sheet and icon (files of the package, no CDN)
    GET  /ui/image/{id}           the photo of a known image id (the file the index or the graph has for
                                  that id; never a path from the request)
    GET  /ui/find?text=&limit=    products by title words or attribute values
    GET  /ui/product/{id}         a product's attributes and tags
    POST /ui/step                 {"candidate", "text", "session"?, "parent"?, "k"?, "who"?}: a new step
    GET  /ui/step/{query_id}?k=   a step answered again (going back in the history)
    GET  /ui/session/{id}         a session's steps
    POST /ui/like                 {"query_id", "images", "k"?, "who"?}
    POST /ui/tag                  {"image", "sentence", "who"?}
    GET  /ui/explain?query=&result=   facts, the subgraph to draw and the Neo4j Browser link
    GET  /ui/attributes           attributes with counts (the curator view)
    POST /ui/curator/merge        {"keep", "drop"}
    POST /ui/curator/remove-tag   {"image", "name", "source"?}
    POST /ui/curator/add-attribute   {"images", "name", "kind"?, "who"?}

Requests pass the same checks as the API (web/security.py) and the same field limits (web/limits.py);
errors are answered by web/errors.py. The page itself and its static files hold no data and need no
token (:data:`web.security.PUBLIC_PATHS`), so a page opened at ``/#token=...`` can load and then send it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.browse import BrowseSession
from engine.config import PageConfig, ServeConfig
from engine.session import InteractiveSession
from web.api import Workers
from web.errors import HttpRefusal
from web.limits import Fields, read_json

__all__ = ["PAGE_FILE", "PAGE_HEADERS", "STATIC_DIR", "routes"]

PACKAGE_DIR = Path(str(resources.files("web")))
STATIC_DIR = PACKAGE_DIR / "static"  # app.js, app.css, favicon.svg
PAGE_FILE = PACKAGE_DIR / "index.html"  # served at / only, with PAGE_HEADERS

# The page loads nothing but its own files, and no inline script can run, even if markup slipped in.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def routes(session: InteractiveSession, config: ServeConfig) -> list[BaseRoute]:
    """The page's routes (registered by :func:`web.app.create_app` beside the API's)."""
    page = PageConfig()
    browse = BrowseSession(session, page, browser_base=config.neo4j_browser_url, bolt_uri=config.neo4j_bolt_uri)
    workers = Workers(config)

    async def body(request: Request, *allowed: str) -> Fields:
        return Fields(await read_json(request, config), config, allowed)

    def params(request: Request, *allowed: str) -> Fields:
        return Fields(dict(request.query_params), config, allowed)

    def k_of(fields: Fields) -> int | None:
        value = fields.body.get("k")
        if isinstance(value, str) and value.isdigit():
            fields.body["k"] = int(value)
        return fields.integer("k", page.results, 1, page.max_results)

    async def index(request: Request) -> Response:
        return FileResponse(PAGE_FILE, media_type="text/html", headers=PAGE_HEADERS)

    async def image(request: Request) -> Response:
        found = await workers.run("read", browse.image_file, request.path_params["image_id"])
        if found is None:
            raise HttpRefusal("no photo for that id", 404)
        path, media = found
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600",
                                                             "X-Content-Type-Options": "nosniff"})

    async def find(request: Request) -> JSONResponse:
        f = params(request, "text", "limit")
        if isinstance(f.body.get("limit"), str) and f.body["limit"].isdigit():
            f.body["limit"] = int(f.body["limit"])
        args = f.text("text"), f.integer("limit", page.find_limit, 1, page.find_limit)
        return JSONResponse(await workers.run("read", browse.find, *args))

    async def product(request: Request) -> JSONResponse:
        return JSONResponse(await workers.run("read", browse.product, request.path_params["image_id"]))

    async def step(request: Request) -> JSONResponse:
        f = await body(request, "candidate", "text", "session", "parent", "k", "who")
        args = (f.ident("candidate"), f.text("text"), f.ident("session", None) if "session" in f.body else None,
                f.ident("parent", None) if "parent" in f.body else None, k_of(f), f.ident("who", "web"))
        return JSONResponse(await workers.run("write", browse.step, *args))

    async def show(request: Request) -> JSONResponse:
        f = params(request, "k")
        return JSONResponse(await workers.run("read", browse.show, request.path_params["query_id"], k_of(f)))

    async def history(request: Request) -> JSONResponse:
        return JSONResponse(await workers.run("read", browse.history, request.path_params["session_id"]))

    async def like(request: Request) -> JSONResponse:
        f = await body(request, "query_id", "images", "k", "who")
        args = f.ident("query_id"), f.idents("images", config.max_like_images), f.ident("who", "web"), k_of(f)
        return JSONResponse(await workers.run("write", browse.like, *args))

    async def tag(request: Request) -> JSONResponse:
        f = await body(request, "image", "sentence", "who")
        args = f.ident("image"), f.text("sentence"), f.ident("who", "web")
        return JSONResponse(await workers.run("write", browse.tag, *args))

    async def explain(request: Request) -> JSONResponse:
        f = params(request, "query", "result")
        return JSONResponse(await workers.run("read", browse.explain, f.ident("query"), f.ident("result")))

    async def attributes(request: Request) -> JSONResponse:
        return JSONResponse(await workers.run("read", browse.attributes))

    async def merge(request: Request) -> JSONResponse:
        f = await body(request, "keep", "drop")
        return JSONResponse(await workers.run("write", browse.merge_attributes, f.text("keep"), f.text("drop"),
                                              timeout=config.sync_timeout_s))

    async def remove_tag(request: Request) -> JSONResponse:
        f = await body(request, "image", "name", "source")
        source = f.ident("source", None) if f.body.get("source") is not None else None
        return JSONResponse(await workers.run("write", browse.remove_tag, f.ident("image"), f.text("name"), source,
                                              timeout=config.sync_timeout_s))

    async def add_attribute(request: Request) -> JSONResponse:
        f = await body(request, "images", "name", "kind", "who")
        args = (f.idents("images", config.max_like_images), f.text("name"), f.ident("kind", "curated"),
                f.ident("who", "web"))
        return JSONResponse(await workers.run("write", browse.add_attribute, *args, timeout=config.sync_timeout_s))

    return [
        Route("/", index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/ui/image/{image_id}", image, methods=["GET"]),
        Route("/ui/find", find, methods=["GET"]),
        Route("/ui/product/{image_id}", product, methods=["GET"]),
        Route("/ui/step", step, methods=["POST"]),
        Route("/ui/step/{query_id}", show, methods=["GET"]),
        Route("/ui/session/{session_id}", history, methods=["GET"]),
        Route("/ui/like", like, methods=["POST"]),
        Route("/ui/tag", tag, methods=["POST"]),
        Route("/ui/explain", explain, methods=["GET"]),
        Route("/ui/attributes", attributes, methods=["GET"]),
        Route("/ui/curator/merge", merge, methods=["POST"]),
        Route("/ui/curator/remove-tag", remove_tag, methods=["POST"]),
        Route("/ui/curator/add-attribute", add_attribute, methods=["POST"]),
    ]
