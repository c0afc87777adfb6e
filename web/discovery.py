"""How commands find a running `tailor serve`: ``$TAILOR_HOME/serve.json``.

The server writes the file once it listens (its address, process id, token and the Neo4j it uses; mode
0600, as it may hold the token) and removes it when it stops. `tailor query | like | tag` read it
(:mod:`cli.client`) and send their request to the server instead of loading torch and the engine.

This module is imported on that light path: standard library and :mod:`readers.files` only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

SERVER_FILE = "serve.json"


class ServerInfo(NamedTuple):  # a NamedTuple, not a dataclass: this module is on the light path
    url: str  # http://127.0.0.1:8765
    pid: int
    home: str  # the TAILOR_HOME it serves
    neo4j_uri: str | None  # NEO4J_URI it was started with; None: the local server of its home
    token: str | None = None
    started_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def server_file(home: Path) -> Path:
    return Path(home) / SERVER_FILE


def write_server_file(home: Path, info: ServerInfo) -> Path:
    """The file commands find the server by, written whole (0600: it may hold the token)."""
    from readers.files import atomic_write

    return atomic_write(server_file(home), json.dumps(info.as_dict(), indent=2) + "\n", mode=0o600)


def remove_server_file(home: Path, pid: int) -> None:
    """Remove the file if it is this process's (a second server on the same home wrote its own)."""
    path = server_file(home)
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but not ours to talk to
        return True
    return True


def read_server_file(home: Path) -> ServerInfo | None:
    """The running server of ``home``, or ``None`` (no file, an unreadable one, or its process is gone)."""
    try:
        raw = json.loads(server_file(home).read_text(encoding="utf-8"))
        info = ServerInfo(url=str(raw["url"]), pid=int(raw["pid"]), home=str(raw["home"]),
                          neo4j_uri=raw.get("neo4j_uri"), token=raw.get("token"),
                          started_at=float(raw.get("started_at", 0.0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not info.url.startswith("http://") or not _alive(info.pid):
        return None
    return info


@contextmanager
def announced(server: Any, home: Path, host: str, token: str | None, neo4j_uri: str | None,
              poll_s: float = 0.05) -> Iterator[None]:
    """While ``server`` (a :class:`uvicorn.Server`) runs: write the server file as soon as it listens (with
    the port it got, so ``--port 0`` works), and remove it when the block ends."""
    import threading

    pid = os.getpid()
    stop = threading.Event()

    def announce() -> None:
        while not stop.is_set() and not getattr(server, "started", False):
            time.sleep(poll_s)
        if stop.is_set():
            return
        port = next(iter(s.getsockname()[1] for srv in server.servers for s in srv.sockets))
        name = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        name = f"[{name}]" if ":" in name else name
        write_server_file(home, ServerInfo(f"http://{name}:{port}", pid, str(home), neo4j_uri, token, time.time()))

    thread = threading.Thread(target=announce, name="tailor-announce", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        remove_server_file(home, pid)
