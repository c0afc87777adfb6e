"""`tailor serve`: the interactions as a small JSON-over-HTTP service on 127.0.0.1.

A command pays for starting Python, torch and the engine's files (about 5 s here) before its work; a
long-running session pays once, so a like or a tag reaches the ranking in a few hundred milliseconds.

    POST /query    {"image": ID, "text": "...", "k": 10, "who": "..."}  -> {"query_id", "results": [...]}
    POST /like     {"query_id": QID, "images": [ID, ...], "who": "..."}
    POST /tag      {"image": ID, "sentence": "...", "who": "..."}
    POST /sync     {"full": false}
    GET  /explain?query=QID&result=ID
    GET  /health

Bodies are JSON objects; a missing or mistyped field is a 400 naming it, an unknown id a 422 with the
reason, and nothing is written for either. There is no authentication: keep it on loopback
(the default) or put it behind a proxy that authenticates.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from engine.errors import INTERACTION_ERRORS, EngineError
from engine.session import InteractiveSession

MAX_BODY = 1 << 20  # 1 MiB: a query, a like or a tag is a few hundred bytes


class BadRequest(ValueError):
    pass


def _field(body: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in body:
        if default is ...:
            raise BadRequest(f"missing field {name!r}")
        return default
    value = body[name]
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"field {name!r} must be a list of strings")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise BadRequest(f"field {name!r} must be an integer from 1 to 1000")
    elif not isinstance(value, kind):
        raise BadRequest(f"field {name!r} must be a {kind.__name__}")
    return value


def make_handler(session: InteractiveSession) -> type[BaseHTTPRequestHandler]:
    routes_post = {
        "/query": lambda b: session.query(_field(b, "image", str), _field(b, "text", str),
                                          _field(b, "k", int, 10), _field(b, "who", str, "api")),
        "/like": lambda b: session.like(_field(b, "query_id", str), _field(b, "images", list),
                                        _field(b, "who", str, "api")),
        "/tag": lambda b: session.tag(_field(b, "sentence", str), _field(b, "image", str),
                                      _field(b, "who", str, "api")),
        "/sync": lambda b: session.sync(_field(b, "full", bool, False)),
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "tailor"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default; errors still answer
            pass

        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, work) -> None:
            try:
                self._send(HTTPStatus.OK, work())
            except BadRequest as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except INTERACTION_ERRORS as exc:
                self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
            except EngineError as exc:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})

        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            url = urlparse(self.path)
            if url.path == "/health":
                b = session.engine.bundle
                self._send(HTTPStatus.OK, {"status": "ok", "model": b.version, "images": len(b.image_ids)})
            elif url.path == "/explain":
                args = parse_qs(url.query)

                def work():
                    if not args.get("query") or not args.get("result"):
                        raise BadRequest("explain needs ?query=QID&result=ID")
                    return session.explain(args["query"][0], args["result"][0])

                self._answer(work)
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route GET {url.path}"})

        def do_POST(self) -> None:  # noqa: N802
            route = routes_post.get(urlparse(self.path).path)
            if route is None:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}"})
                return

            def work():
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise BadRequest(f"body of {length} bytes is over the {MAX_BODY} byte limit")
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise BadRequest(f"body is not JSON: {exc}") from exc
                if not isinstance(body, dict):
                    raise BadRequest("body must be a JSON object")
                return route(body)

            self._answer(work)

    return Handler


class InteractionServer:
    """The HTTP server around a session; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(self, session: InteractiveSession, host: str = "127.0.0.1", port: int = 8765):
        self.session = session
        self.httpd = ThreadingHTTPServer((host, port), make_handler(session))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> InteractionServer:
        """Serve from a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="tailor-serve")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.session.close()
