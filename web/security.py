"""Who may talk to `tailor serve`, checked before any route runs (an ASGI middleware).

- **Host** (every request): the name in the Host header must be one this server answers to: the loopback
  names (127.0.0.1, localhost, ::1), the bound address and ``allowed_hosts``. A page on another site whose
  name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
- **Token** (every request but the page's own files, :func:`is_public`, when ``ServeConfig.token`` is set:
  required to bind anything but loopback):
  ``Authorization: Bearer <token>``, or the ``tailor_token`` cookie for a page; compared in constant time.
- **State-changing requests** (anything but GET, HEAD, OPTIONS): a browser's ``Origin`` must be this
  server's own (``http://<Host>``) or one of ``allowed_origins``; without an Origin, ``Sec-Fetch-Site`` (when
  sent) must say same-origin; the body must be declared ``application/json``, which a cross-site page can
  send only after a CORS preflight that this server never grants (it sends no CORS headers at all).
  Clients that are not browsers (the CLI, curl) send neither header and are let through.
- **Requests in progress** are counted; past ``max_requests`` a new one gets 503 at once.
"""

from __future__ import annotations

import hmac
import ipaddress
from http.cookies import CookieError, SimpleCookie

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.config import ServeConfig
from web.errors import Busy, HttpRefusal, error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_COOKIE = "tailor_token"
PUBLIC_PATHS = frozenset({"/", "/favicon.ico"})  # and /static/...: see is_public


def is_public(scope: Scope) -> bool:
    """The page's HTML and static files: the same for everyone and free of data, so they load without the
    token (a page opened at ``/#token=...`` then sends it with every request it makes)."""
    path = scope.get("path", "")
    return scope["method"] in ("GET", "HEAD") and (path in PUBLIC_PATHS or path.startswith("/static/"))


def is_loopback(host: str) -> bool:
    """True for a loopback address or the name localhost."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The name part of a Host header or an origin's authority: ``[::1]:8765`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class RequestGuard:
    """The checks of the module doc, as ASGI middleware around the app."""

    def __init__(self, app: ASGIApp, config: ServeConfig):
        self.app = app
        self.config = config
        names = set(LOOPBACK_NAMES) | {h.lower() for h in config.allowed_hosts}
        if config.host not in ("0.0.0.0", "::", ""):
            names.add(host_name(config.host))
        self.host_names = frozenset(names)
        self.origins = frozenset(o.rstrip("/").lower() for o in config.allowed_origins)
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope)
            if self.in_progress >= self.config.max_requests:
                raise Busy(f"{self.in_progress} requests are in progress (the limit is {self.config.max_requests}); "
                           "retry in a moment")
        except HttpRefusal as refusal:
            await error_response(refusal)(scope, receive, send)
            return
        self.in_progress += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1

    def check(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if host_name(host) not in self.host_names:
            raise HttpRefusal(f"Host {host!r} is not served here (allowed: {', '.join(sorted(self.host_names))}; "
                              "`tailor serve --allow-host NAME` adds one)", 403)
        if self.config.token and not is_public(scope) and not self._token_ok(headers):
            raise HttpRefusal("this server needs its token: send `Authorization: Bearer <TAILOR_SERVE_TOKEN>`",
                              401, {"WWW-Authenticate": "Bearer"})
        if scope["method"] in SAFE_METHODS:
            return
        origin = headers.get("origin")
        if origin is not None:
            if origin.rstrip("/").lower() not in self._origins_for(host):
                raise HttpRefusal(f"cross-site request refused: Origin {origin!r} is not this server", 403)
        elif headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise HttpRefusal("cross-site request refused (Sec-Fetch-Site: "
                              f"{headers.get('sec-fetch-site')})", 403)
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise HttpRefusal(f"a {scope['method']} body must be sent as Content-Type: application/json, not "
                              f"{media or 'nothing'!r}", 415)

    def _origins_for(self, host: str) -> frozenset[str]:
        own = {f"http://{host.lower()}", f"https://{host.lower()}"}
        return self.origins | own

    def _token_ok(self, headers: Headers) -> bool:
        expected = self.config.token.encode()
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected):
            return True
        try:
            cookie = SimpleCookie(headers.get("cookie", ""))
        except CookieError:
            return False
        morsel = cookie.get(TOKEN_COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), expected)


def check_binding(config: ServeConfig) -> None:
    """Refuse (ValueError) to serve beyond loopback without a token: anyone on the network could write."""
    if not is_loopback(config.host) and not config.token:
        raise ValueError(f"refusing to listen on {config.host}: beyond loopback anyone who can reach it could "
                         "write to the graph. Set TAILOR_SERVE_TOKEN (clients send it as a bearer token), or "
                         "serve on 127.0.0.1")
