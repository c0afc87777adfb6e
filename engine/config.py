"""Settings of the engine's own jobs as data, one place for their defaults (model and training settings
are in :mod:`gnn.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gnn.config import EXCLUSIVE_KINDS
from readers.datasets import myntra_catalog
from readers.files import read_json_object


@dataclass
class DemoConfig:
    """`tailor demo`: a slice of a catalog, trained briefly, answered and interacted with."""

    catalog: Path = field(default_factory=myntra_catalog)
    limit: int = 2000  # products loaded
    model: str = "graph_catalog"
    epochs: int = 80
    # A 2,000-product graph learns after a plateau: validation R@10 stays at 25-30 for 10-15 epochs before
    # it climbs (to about 70 by epoch 30), so the usual patience would stop it on the plateau.
    patience: int = 25
    queries: int = 3  # test queries answered with pictures
    seed: int = 0
    tag_sentence: str = "that one has long sleeves"  # the "more metadata" sentence the demo says


# Set by `tailor serve` from the environment and its options only.
_NOT_FROM_FILE = ("token", "neo4j_browser_url", "neo4j_bolt_uri")


@dataclass(frozen=True)
class ServeConfig:
    """Limits of one interactive request (the session enforces the engine's; `tailor serve` all of them)
    and the HTTP server's settings: the one place for their defaults."""

    # Where `tailor serve` listens. Anything but loopback needs a token (``TAILOR_SERVE_TOKEN``).
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = field(default=None, repr=False)  # bearer token; never printed
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides the loopback ones and ``host``
    allowed_origins: tuple[str, ...] = ()  # origins ("http://name:port") allowed to write besides our own
    # What one request may ask for.
    max_k: int = 100  # results per query
    max_text_chars: int = 500  # a query text or a tag sentence
    max_like_images: int = 50  # images in one like (the set of what one person liked for one query)
    max_id_chars: int = 200  # an image or query id
    # Framing and time.
    max_body_bytes: int = 64 * 1024
    max_json_depth: int = 16  # our bodies are flat objects; deeper nesting is refused
    max_connections: int = 512  # open connections (idle ones cost a socket, no thread); past it, closed
    max_requests: int = 64  # requests in progress (waiting for a thread included); past it, 503
    header_timeout_s: float = 10.0  # from a connection (or its last answer) to a complete request head
    body_timeout_s: float = 10.0  # to receive a request's whole body
    keep_alive_s: int = 5  # an idle kept-alive connection is closed after this
    request_timeout_s: float = 30.0  # the work of one request (a sync: sync_timeout_s), then a 503
    sync_timeout_s: float = 300.0
    read_threads: int = 8  # requests that only read the engine, run at once
    write_threads: int = 4  # requests that write to Neo4j, run at once
    # Tags: a phrase the graph does not know becomes a new attribute only if the tagger is this sure.
    new_attribute_min_score: float = 0.8
    # Where the page's "Open in Neo4j Browser" links point (None: no link) and the Bolt address they fill
    # in; `tailor serve` sets them (--browser-url, else the local server's), never a file.
    neo4j_browser_url: str | None = None
    neo4j_bolt_uri: str | None = None

    @classmethod
    def from_file(cls, path: Path | None = None, **settings: Any) -> ServeConfig:
        """Defaults, then a JSON file's overrides (``{"max_k": 50, ...}``), then ``settings`` (None leaves a
        value). Errors name the file and the field. The token is never read from a file."""
        overrides: dict[str, Any] = read_json_object(path, "ServeConfig fields") if path is not None else {}
        known = {f.name: f for f in fields(cls)}
        for name, value in overrides.items():
            if name not in known or name in _NOT_FROM_FILE:
                raise ValueError(f"{path}: {name!r} is not a setting of tailor serve "
                                 f"(one of {', '.join(n for n in known if n not in _NOT_FROM_FILE)})")
            default = getattr(cls, name)
            if isinstance(default, tuple):
                value = tuple(value)
            elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(default):
                raise ValueError(f"{path}: {name!r} must be {type(default).__name__}, not {value!r}")
            overrides[name] = value
        return replace(cls(), **overrides, **{k: v for k, v in settings.items() if v is not None})


@dataclass(frozen=True)
class PageConfig:
    """The page served by `tailor serve` (engine/browse.py): how much it shows and how steps carry roles."""

    results: int = 12  # results shown for a step
    max_results: int = 48  # the most a request may ask for
    find_limit: int = 24  # products listed by a search
    explain_nodes: int = 40  # nodes drawn in an explanation (the rest are counted, not drawn)
    # Attribute kinds a product has one value of: a step that adds one replaces an earlier step's value of
    # that kind ("in black" then "in red" asks for red) instead of asking for both.
    exclusive_kinds: tuple[str, ...] = EXCLUSIVE_KINDS
