"""Every error as an HTTP status, in one place: refusals of the HTTP layer (:class:`HttpRefusal` and its
kinds) and the engine's error types (:mod:`engine.errors`). Bodies are ``{"error": message}``; the message
names the field, id or file at fault and the next step."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.errors import (
    ArtifactError,
    DatabaseUnavailableError,
    DataError,
    EngineError,
    InvalidRequestError,
    NotPublishedError,
    UnknownIdError,
)

log = logging.getLogger("tailor.serve")


class HttpRefusal(Exception):
    """A request refused by the HTTP layer before (or instead of) any engine work."""

    status = 400
    headers: dict[str, str] = {}

    def __init__(self, message: str, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        if headers:
            self.headers = headers


class BadRequest(HttpRefusal):
    """A field missing, mistyped, too long or out of range; a body that is not a JSON object."""

    status = 400


class BodyTooLarge(HttpRefusal):
    status = 413
    headers = {"Connection": "close"}


class BodyTimeout(HttpRefusal):
    """The body did not arrive in time (shorter than its Content-Length, or trickled)."""

    status = 408
    headers = {"Connection": "close"}


class ClientGone(HttpRefusal):
    """The client closed the connection before its request was complete: nothing was done, no one hears."""

    status = 400


class Busy(HttpRefusal):
    """Too many requests at once, or the work took longer than the request's time limit."""

    status = 503
    headers = {"Retry-After": "1"}


# Engine errors: what is wrong with the request (422), or with the server's state (503).
ENGINE_STATUS: tuple[tuple[type[EngineError], int], ...] = (
    (UnknownIdError, 422),  # an image, query or attribute the graph or the index does not have
    (InvalidRequestError, 422),  # well-formed but not possible as asked (no attribute in a sentence)
    (DatabaseUnavailableError, 503),  # Neo4j down or too slow: the reason says which and what was done
    (NotPublishedError, 503),
    (ArtifactError, 503),  # a published file corrupt or missing: the reason names it and the fix
    (DataError, 503),
)


def status_of(exc: BaseException) -> int:
    if isinstance(exc, HttpRefusal):
        return exc.status
    for kind, status in ENGINE_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_response(exc: BaseException) -> JSONResponse:
    status = status_of(exc)
    if status == 500:
        log.exception("internal error", exc_info=exc)
        message = f"internal error ({type(exc).__name__}); the server log has the details"
    else:
        message = str(exc)
    headers = dict(exc.headers) if isinstance(exc, HttpRefusal) else {}
    if status == 503:
        headers.setdefault("Retry-After", "5")
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


def exception_handlers() -> dict:
    """For :class:`starlette.applications.Starlette`: every error answered as JSON with its status."""
    return {HttpRefusal: _handle, EngineError: _handle, Exception: _handle}
