"""A whole catalog into an EMPTY database, fast: the first load of a shop's products.

:mod:`graphdb.ingest` is idempotent and incremental: every batch first reads what exists, so a second
run writes nothing and a half-finished load is finished by running it again. A first load into an empty
database does not need those reads. Two bulk paths write the same graph (same labels, properties and
relationships as ``ingest``), and both refuse a database that holds anything:

- :func:`bulk_create` (any server, over Bolt): batched ``CREATE`` statements without the existence
  probes, on several threads. Node ids are checked in Python (a repeated id or a query naming an unknown
  image is an error naming the line), since there is nothing in the database to check them against.
- :func:`bulk_import` (tailor's own local server): the records as CSV files, then Neo4j's offline
  importer (``neo4j-admin database import full``, from the server's Maven artifacts) with the server
  stopped, then the server started again and the schema (constraints, indexes) built over the loaded
  graph. By far the fastest, but the database is offline for the import.

Either is all-or-nothing only in the sense that a failed bulk load leaves a database to empty and load
again (``bulk_create`` commits batch by batch); the incremental load is the one to resume.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neo4j import Driver, ManagedTransaction, ResultSummary

from graphdb.ingest import (
    _CREATE_CAPTIONS,
    _CREATE_IMAGES,
    _MERGE_ATTRIBUTE_NAMES,
    _MERGE_ATTRIBUTES,
    IngestError,
    IngestReport,
    _create,
    _ingest,
    _run,
)
from graphdb.schema import apply_schema
from readers.graph_records import CAPTION_ROLES, HAS_ATTRIBUTE, MENTIONS, MODIFIES, TARGETS
from readers.progress import StartPhase, no_progress
from readers.records import ImageRecord, QueryRecord

__all__ = ["BulkReport", "DatabaseNotEmptyError", "bulk_create", "bulk_import", "node_count", "require_empty"]

Chunk = tuple[Sequence[ImageRecord], Sequence[QueryRecord]]
# Products whose images are committed before their queries are written (bounds what is held in memory).
ROUND_PRODUCTS = 50_000


class DatabaseNotEmptyError(RuntimeError):
    """A bulk load was asked for a database that already holds nodes; nothing was written."""


@dataclass
class BulkReport:
    method: str  # "create" | "import"
    nodes: int = 0
    relationships: int = 0
    seconds: float = 0.0  # the whole load, from the first record to a database ready with its schema
    phases: dict[str, float] = field(default_factory=dict)  # where the time went

    @property
    def relationships_per_second(self) -> float:
        return self.relationships / self.seconds if self.seconds else 0.0


def node_count(driver: Driver, database: str | None = None) -> int:
    """Nodes in the database (from the count store: constant time)."""
    records, _, _ = driver.execute_query("MATCH (n) RETURN count(n) AS n", database_=database)
    return int(records[0]["n"])


def require_empty(driver: Driver, database: str | None = None) -> None:
    """Raise :class:`DatabaseNotEmptyError` unless the database holds no node."""
    n = node_count(driver, database)
    if n:
        raise DatabaseNotEmptyError(
            f"the database already holds {n:,} nodes; a bulk load only fills an EMPTY database and wrote "
            "nothing. Load without --bulk (the incremental load is idempotent: it adds only what is new), "
            "or load into a new database (e.g. `tailor db start --data-dir NEW_DIR`)."
        )


# --- checking and numbering the records ------------------------------------------------------------


class _Catalog:
    """What the records say, checked as they stream: ids once each, queries naming known images, and each
    attribute's kinds in the order ``ingest`` would record them (first batch it appears in, kinds sorted)."""

    def __init__(self, source: str):
        self.source = source
        self.images: set[str] = set()
        self.captions: set[str] = set()
        self.kind: dict[str, str] = {}  # attribute name -> its first kind ('unknown' when a caption named it first)
        self.kinds: dict[str, list[str]] = {}  # attribute name -> every kind an image gave it

    def image_batch(self, batch: Sequence[ImageRecord]) -> None:
        pairs: set[tuple[str, str]] = set()
        for r in batch:
            if not r.id:
                raise IngestError(self.source, r.source_line, "empty image id", "id")
            if r.id in self.images:
                raise IngestError(self.source, r.source_line, f"image id {r.id!r} appears twice; a bulk load "
                                  "needs each id once (the incremental load folds repeats)", "id")
            self.images.add(r.id)
            pairs.update((a.name, a.kind) for a in r.attributes)
        for name, kind in sorted(pairs):  # as ingest's MERGE of a batch's (name, kind) pairs records them
            self.kind.setdefault(name, kind)
            kinds = self.kinds.setdefault(name, [])
            if kind not in kinds:
                kinds.append(kind)

    def query_batch(self, batch: Sequence[QueryRecord]) -> None:
        for q in batch:
            if q.id in self.captions:
                raise IngestError(self.source, q.source_line, f"query id {q.id!r} appears twice", "id")
            self.captions.add(q.id)
            for name, image in (("candidate", q.candidate_id), ("target", q.target_id)):
                if image is not None and image not in self.images:
                    raise IngestError(self.source, q.source_line, f"refers to unknown image {image!r}", name)
            for value in (*q.added, *q.removed, *q.mentioned):
                self.kind.setdefault(value, "unknown")
                self.kinds.setdefault(value, [])


def _rounds(chunks: Iterable[Chunk], size: int = ROUND_PRODUCTS) -> Iterator[tuple[list[ImageRecord],
                                                                                   list[QueryRecord]]]:
    images: list[ImageRecord] = []
    queries: list[QueryRecord] = []
    for chunk_images, chunk_queries in chunks:
        images.extend(chunk_images)
        queries.extend(chunk_queries)
        if len(images) >= size:
            yield images, queries
            images, queries = [], []
    if images or queries:
        yield images, queries


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- over Bolt: CREATE without probes --------------------------------------------------------------


@dataclass
class _Images:
    attrs: list[dict[str, str]]
    names: list[str]
    rows: list[list[Any]]


def _prepare_images(batch: list[ImageRecord], catalog: _Catalog) -> _Images:
    positions: dict[str, int] = {}
    rows = []
    for r in batch:
        attrs = list(dict.fromkeys(a.name for a in r.attributes))
        rows.append([r.id, r.title, r.image_path, r.split, r.group,
                     [positions.setdefault(n, len(positions)) for n in attrs]])
    pairs = sorted({(a.name, a.kind) for r in batch for a in r.attributes})
    return _Images([{"name": n, "kind": k} for n, k in pairs], list(positions), rows)


def _write_images(tx: ManagedTransaction, prepared: _Images, source: str) -> list[ResultSummary]:
    summaries: list[ResultSummary] = []
    if prepared.attrs:
        _run(tx, _MERGE_ATTRIBUTES, summaries, attrs=prepared.attrs)
    _create(tx, _CREATE_IMAGES, summaries, prepared.rows, attrs=prepared.names, source=source)
    return summaries


@dataclass
class _Captions:
    names: list[str]
    images: list[str]
    attrs: list[str]
    rows: list[list[Any]]


def _prepare_captions(batch: list[QueryRecord], _source: str) -> _Captions:
    images: dict[str, int] = {}
    attrs: dict[str, int] = {}
    rows = []
    for q in batch:
        rows.append([q.id, q.text, q.split, q.group, images.setdefault(q.candidate_id, len(images)),
                     [images.setdefault(q.target_id, len(images))] if q.target_id else [],
                     *([attrs.setdefault(n, len(attrs)) for n in dict.fromkeys(names)]
                       for names in (q.added, q.removed, q.mentioned))])
    return _Captions(sorted(attrs), list(images), list(attrs), rows)


def _write_captions(tx: ManagedTransaction, prepared: _Captions, _source: str) -> list[ResultSummary]:
    summaries: list[ResultSummary] = []
    if prepared.names:
        _run(tx, _MERGE_ATTRIBUTE_NAMES, summaries, names=prepared.names)
    _create(tx, _CREATE_CAPTIONS, summaries, prepared.rows, images=prepared.images, attrs=prepared.attrs)
    return summaries


def bulk_create(
    driver: Driver,
    chunks: Iterable[Chunk],
    source: str = "catalog",
    attribute_source: str = "catalog",
    batch_size: int = 10_000,
    workers: int | None = None,
    database: str | None = None,
    start_phase: StartPhase = no_progress,
) -> BulkReport:
    """Products (with their attributes) and composed queries into an empty database, over Bolt.

    ``chunks`` are (images, queries) pairs; a query may name images of its own or an earlier chunk.
    Raises :class:`DatabaseNotEmptyError` (nothing written) unless the database is empty, and
    :class:`~graphdb.ingest.IngestError` naming the line of a repeated id or an unknown image.
    """
    start = time.perf_counter()
    require_empty(driver, database)
    apply_schema(driver, database)  # constraints first: caption batches find their images by index
    catalog = _Catalog(source)
    report = BulkReport("create", phases={"images": 0.0, "queries": 0.0})
    image_progress = start_phase("products (bulk)", 0)
    query_progress = start_phase("queries (bulk)", 0)
    totals = IngestReport()

    def images_prepare(batch: list[ImageRecord], _source: str) -> _Images:
        return _prepare_images(batch, catalog)

    for images, queries in _rounds(chunks):
        tick = time.perf_counter()
        for batch in _batches(images, batch_size):
            catalog.image_batch(batch)
        totals.merge(_ingest(driver, images, images_prepare, _write_images, (attribute_source,), batch_size,
                             image_progress, database, workers))
        report.phases["images"] += time.perf_counter() - tick
        tick = time.perf_counter()
        catalog.query_batch(queries)
        totals.merge(_ingest(driver, queries, _prepare_captions, _write_captions, (source,), batch_size,
                             query_progress, database, workers))
        report.phases["queries"] += time.perf_counter() - tick
    report.nodes, report.relationships = totals.nodes_created, totals.relationships_created
    report.seconds = time.perf_counter() - start
    return report


# --- offline: CSV files and neo4j-admin database import -------------------------------------------

_IMAGE_HEADER = ["id:ID(Image)", "title", "image_path", "split", "group", "updated_at:datetime"]
_CAPTION_HEADER = ["id:ID(Caption)", "text", "split", "group", "updated_at:datetime"]
_ATTRIBUTE_HEADER = ["name:ID(Attribute)", "kind", "kinds:string[]", "updated_at:datetime"]
_REL_HEADERS = {
    HAS_ATTRIBUTE: [":START_ID(Image)", ":END_ID(Attribute)", "source", "confidence:double", "created_at:datetime"],
    MODIFIES: [":START_ID(Caption)", ":END_ID(Image)"],
    TARGETS: [":START_ID(Caption)", ":END_ID(Image)"],
    MENTIONS: [":START_ID(Caption)", ":END_ID(Attribute)", "role"],
}
ARRAY_DELIMITER = "\x1f"  # between the values of a string[] cell (never inside an attribute name)


@dataclass
class CsvFiles:
    folder: Path
    nodes: dict[str, Path]
    relationships: dict[str, Path]
    counts: dict[str, int]


def write_import_csv(chunks: Iterable[Chunk], folder: Path, source: str = "catalog",
                     attribute_source: str = "catalog", start_phase: StartPhase = no_progress,
                     batch_size: int = 10_000) -> CsvFiles:
    """The catalog as the CSV files ``neo4j-admin database import`` reads (checked as for bulk_create)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    catalog = _Catalog(source)
    nodes = {label: folder / f"{label.lower()}s.csv" for label in ("Image", "Caption", "Attribute")}
    rels = {rel: folder / f"{rel.lower()}.csv" for rel in _REL_HEADERS}
    counts = dict.fromkeys([*nodes, *rels], 0)
    advance = start_phase("CSV for the importer", 0)
    handles = {name: open(path, "w", encoding="utf-8", newline="") for name, path in {**nodes, **rels}.items()}
    try:
        out = {name: csv.writer(fh) for name, fh in handles.items()}
        out["Image"].writerow(_IMAGE_HEADER)
        out["Caption"].writerow(_CAPTION_HEADER)
        for rel, header in _REL_HEADERS.items():
            out[rel].writerow(header)
        for images, queries in _rounds(chunks):
            for batch in _batches(images, batch_size):
                catalog.image_batch(batch)
            for r in images:
                out["Image"].writerow([r.id, r.title, r.image_path, r.split, r.group, now])
                for name in dict.fromkeys(a.name for a in r.attributes):
                    out[HAS_ATTRIBUTE].writerow([r.id, name, attribute_source, 1.0, now])
                    counts[HAS_ATTRIBUTE] += 1
            counts["Image"] += len(images)
            catalog.query_batch(queries)
            for q in queries:
                out["Caption"].writerow([q.id, q.text, q.split, q.group, now])
                out[MODIFIES].writerow([q.id, q.candidate_id])
                counts[MODIFIES] += 1
                if q.target_id:
                    out[TARGETS].writerow([q.id, q.target_id])
                    counts[TARGETS] += 1
                for role, names in zip(CAPTION_ROLES, (q.added, q.removed, q.mentioned), strict=True):
                    for name in dict.fromkeys(names):
                        out[MENTIONS].writerow([q.id, name, role])
                        counts[MENTIONS] += 1
            counts["Caption"] += len(queries)
            advance(len(images) + len(queries))
        out["Attribute"].writerow(_ATTRIBUTE_HEADER)
        for name, kinds in sorted(catalog.kinds.items()):
            out["Attribute"].writerow([name, catalog.kind[name], ARRAY_DELIMITER.join(kinds), now])
        counts["Attribute"] = len(catalog.kinds)
    finally:
        for fh in handles.values():
            fh.close()
    return CsvFiles(folder, nodes, rels, counts)


def import_memory() -> str:
    """Off-heap memory the importer may use: ``TAILOR_IMPORT_MEMORY`` (default 1g; it otherwise takes
    most of the machine's free memory, which is not ours to take on a shared machine)."""
    from graphdb.server.manager import _memory_setting

    return _memory_setting("TAILOR_IMPORT_MEMORY", "1g")


def run_importer(home: Path, files: CsvFiles, database: str = "neo4j", log: Path | None = None) -> float:
    """``neo4j-admin database import full`` into ``home`` (a stopped server's Neo4j home); seconds taken."""
    from graphdb.server.manager import JVM_FLAGS, _checked_java, server_classpath

    java = _checked_java()
    cmd = [java, "-Xmx512m", *JVM_FLAGS, "-cp", server_classpath(build=True), "org.neo4j.cli.AdminTool",
           "database", "import", "full", database, "--overwrite-destination=true", f"--array-delimiter={ARRAY_DELIMITER}",
           f"--max-off-heap-memory={import_memory()}", f"--threads={max(1, os.cpu_count() or 1)}"]
    cmd += [f"--nodes={label}={path}" for label, path in files.nodes.items()]
    cmd += [f"--relationships={rel}={path}" for rel, path in files.relationships.items()]
    env = {k: v for k, v in os.environ.items() if k != "NEO4J_PASSWORD"}
    env["NEO4J_HOME"] = str(home)
    env.pop("NEO4J_CONF", None)
    tick = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=home)
    if log is not None:
        log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0 or "IMPORT DONE" not in done.stdout:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise RuntimeError(f"neo4j-admin database import failed (exit {done.returncode}); the database is "
                           f"unchanged or empty. Output:\n{tail}")
    return time.perf_counter() - tick


def bulk_import(
    server: Any,
    driver_for: Any,
    chunks: Iterable[Chunk],
    source: str = "catalog",
    attribute_source: str = "catalog",
    start_phase: StartPhase = no_progress,
    keep_csv: Path | None = None,
) -> BulkReport:
    """The catalog into tailor's EMPTY local server (a :class:`~graphdb.server.manager.LocalServer`) with
    Neo4j's offline importer: CSV files, server stopped, import, server started, schema built.

    ``driver_for()`` opens a driver to the running server (it is called before and after the restart).
    Raises :class:`DatabaseNotEmptyError` (nothing written, server left running) unless it is empty.
    """
    start = time.perf_counter()
    report = BulkReport("import")
    driver = driver_for()
    try:
        require_empty(driver)
    finally:
        driver.close()
    folder = keep_csv or Path(tempfile.mkdtemp(prefix="tailor-import-", dir=server.data_dir))
    try:
        tick = time.perf_counter()
        files = write_import_csv(chunks, folder, source, attribute_source, start_phase)
        report.phases["csv"] = time.perf_counter() - tick
        tick = time.perf_counter()
        server.stop()
        report.phases["server stop"] = time.perf_counter() - tick
        home = server.data_dir / "db"
        try:
            report.phases["import"] = run_importer(home, files, log=server.log_dir / "import.log")
        finally:
            tick = time.perf_counter()
            server.start()
            report.phases["server start"] = time.perf_counter() - tick
    finally:
        if keep_csv is None:
            shutil.rmtree(folder, ignore_errors=True)
    tick = time.perf_counter()
    driver = driver_for()
    try:
        apply_schema(driver)
        # A CSV cell cannot hold an empty list: names only captions mention get theirs here (a few rows).
        driver.execute_query("MATCH (a:Attribute) WHERE a.kinds IS NULL SET a.kinds = []")
    finally:
        driver.close()
    report.phases["schema"] = time.perf_counter() - tick
    report.nodes = sum(files.counts[k] for k in ("Image", "Caption", "Attribute"))
    report.relationships = sum(files.counts[k] for k in _REL_HEADERS)
    report.seconds = time.perf_counter() - start
    return report
