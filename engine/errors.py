"""What can go wrong in the engine, as types: the CLI maps them to exit codes, the HTTP server to statuses.

Every message says what is wrong (the id, file or field at fault) and, where there is one, the next step.
Nothing is written when one of these is raised by an interaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class EngineError(Exception):
    """Base of the engine's errors."""


class NotPublishedError(EngineError):
    """No published engine in the workspace yet (``tailor train`` makes one)."""


class ArtifactError(EngineError):
    """A published engine's file is missing, corrupt or from another version; the message names the file
    and the fix."""


class DataError(EngineError):
    """The graph lacks what a step needs (no training queries, no edges of an attribute source)."""


class UnknownIdError(EngineError, LookupError):
    """An image, query or attribute id that the graph or the published index does not have."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


class InvalidRequestError(EngineError, ValueError):
    """A request that cannot be carried out as asked (nothing to like, no attribute in a sentence)."""


class DatabaseUnavailableError(EngineError):
    """Neo4j did not answer in time; the request was not carried out."""


# What an interaction can refuse with: the caller's input, not the engine, is at fault.
INTERACTION_ERRORS = (UnknownIdError, InvalidRequestError)


@contextlib.contextmanager
def database_calls(done: str = "nothing was done", what: str = "Neo4j") -> Iterator[None]:
    """Neo4j being unreachable, gone mid-call or too slow becomes :class:`DatabaseUnavailableError` (the
    one place the driver's exceptions are translated); anything else passes through. ``done``: what the
    caller had already carried out when the database went away, for the message."""
    from neo4j.exceptions import ClientError, DriverError, ServiceUnavailable, SessionExpired, TransientError

    try:
        yield
    except (ServiceUnavailable, SessionExpired) as exc:
        raise DatabaseUnavailableError(f"{what} is unreachable ({exc}); {done}. Start it "
                                       "(`tailor db start`) or check NEO4J_URI, then retry") from exc
    except (DriverError, TransientError) as exc:  # pool exhausted, timed out, still deadlocked after retries
        if isinstance(exc, DriverError) and not _is_timeout(exc):
            raise
        raise DatabaseUnavailableError(f"{what} did not answer in time ({exc}); {done}; retry") from exc
    except ClientError as exc:
        if "TransactionTimedOut" not in (exc.code or ""):
            raise
        raise DatabaseUnavailableError(f"{what} did not answer in time ({exc.code}); {done}; retry") from exc


def _is_timeout(exc: Exception) -> bool:
    from neo4j.exceptions import ConnectionAcquisitionTimeoutError, ConnectionPoolError

    return isinstance(exc, ConnectionAcquisitionTimeoutError | ConnectionPoolError)
