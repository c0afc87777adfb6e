"""Bounded requests: bodies read within a size and a time limit, JSON parsed within a depth, fields checked
one by one (type, length, range), and the HTTP protocol closing connections whose request head does not
arrive in time. Each refusal names the field or the limit (:mod:`web.errors`); nothing is written.

uvicorn's h11 protocol already answers a malformed request line or header, a negative or non-numeric
Content-Length and an oversized head with a 400 and closes; what it lacks is a deadline before the head
is complete, so :class:`BoundedH11Protocol` adds one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.config import ServeConfig
from web.errors import BadRequest, BodyTimeout, BodyTooLarge, ClientGone


async def read_json(request: Request, config: ServeConfig) -> dict[str, Any]:
    """The request body as a JSON object (``{}`` when empty), read within ``max_body_bytes`` and
    ``body_timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > config.max_body_bytes:  # h11 has checked it is digits
        raise BodyTooLarge(f"body of {int(declared):,} bytes is over the {config.max_body_bytes:,} byte limit")

    async def receive() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise BodyTooLarge(f"body is over the {config.max_body_bytes:,} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(receive(), config.body_timeout_s)
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {config.body_timeout_s:g} s (is it shorter than "
                          "its Content-Length?)") from None
    except ClientDisconnect:
        raise ClientGone() from None
    return parse_json(raw, config.max_json_depth)


def parse_json(raw: bytes, max_depth: int) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes; strings must be valid Unicode (no lone surrogates)."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"body is nested deeper than {max_depth} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    _check_value(body, max_depth, "body")
    return body


def _check_value(value: Any, depth: int, where: str) -> None:
    if depth < 0:
        raise BadRequest(f"{where} is nested too deeply")
    if isinstance(value, str):
        _check_unicode(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, f"{where} key")
            _check_value(item, depth - 1, f"field {key!r}" if where == "body" else where)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth - 1, where)


def _check_unicode(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where} is not valid Unicode (a lone surrogate)") from None


class Fields:
    """Typed access to a JSON body's fields, each checked against the limits; unknown fields are refused
    (a misspelt field would otherwise be silently ignored)."""

    def __init__(self, body: dict[str, Any], config: ServeConfig, allowed: tuple[str, ...]):
        self.body = body
        self.config = config
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r} (this route takes {', '.join(allowed)})")

    def _get(self, name: str, default: Any) -> Any:
        if name not in self.body:
            if default is ...:
                raise BadRequest(f"missing field {name!r}")
            return default
        return self.body[name]

    def text(self, name: str, default: Any = ...) -> str:
        """A query text or a sentence: a non-empty string of at most ``max_text_chars``."""
        value = self._get(name, default)
        if not isinstance(value, str):
            raise BadRequest(f"field {name!r} must be a string")
        if len(value) > self.config.max_text_chars:
            raise BadRequest(f"field {name!r} has {len(value):,} characters; at most "
                             f"{self.config.max_text_chars} are accepted")
        if not value.strip():
            raise BadRequest(f"field {name!r} is empty")
        return value

    def ident(self, name: str, default: Any = ...) -> str:
        """An image id, a query id or a name: a non-empty string of at most ``max_id_chars``."""
        value = self._get(name, default)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"field {name!r} must be a non-empty string")
        if len(value) > self.config.max_id_chars:
            raise BadRequest(f"field {name!r} is longer than {self.config.max_id_chars} characters")
        return value

    def idents(self, name: str, most: int) -> list[str]:
        value = self._get(name, ...)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise BadRequest(f"field {name!r} must be a list of strings")
        if not value:
            raise BadRequest(f"field {name!r} is empty")
        if len(value) > most:
            raise BadRequest(f"field {name!r} has {len(value)} items; at most {most} are accepted")
        if any(len(v) > self.config.max_id_chars for v in value):
            raise BadRequest(f"field {name!r} has an id longer than {self.config.max_id_chars} characters")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadRequest(f"field {name!r} must be an integer from {low} to {high}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise BadRequest(f"field {name!r} must be true or false")
        return value


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with two bounds: a request head must be complete within ``header_timeout``
    of the connection opening (or of the previous answer), else the connection is closed (a half-open or
    trickling client holds nothing for long); and past ``max_connections`` open connections a new one is
    closed at once. Connections cost no thread; running requests are bounded in the app."""

    header_timeout: float = ServeConfig.header_timeout_s
    max_connections: int = ServeConfig.max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._heard = False
        if len(self.connections) > self.max_connections:
            transport.close()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        self._heard = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._heard = False
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete  # not answering a request right now
        if idle and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            if self._heard and self.conn.their_state is h11.IDLE:  # part of a head arrived: say why
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                     b"connection: close\r\n\r\n")
            self.transport.close()


def bounded_protocol(config: ServeConfig) -> type[BoundedH11Protocol]:
    """The protocol class for uvicorn (``Config(http=...)``) with ``config``'s bounds."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,),
                {"header_timeout": config.header_timeout_s, "max_connections": config.max_connections})
