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

import contextlib
import csv
import gc
import json
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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

# Node ids are the importer's ACTUAL ids (``--id-type=actual``): every node's record number, counted over
# all labels in the order the records stream. Relationship rows are then two numbers and constants, with
# no id mapping for the importer to build and search (measured at a million products: the importer 74 s
# with string ids, 45 s with these), and they need no quoting, so they are formatted as text directly.
_IMAGE_HEADER = [":ID", "id", "title", "image_path", "split", "group", "updated_at:datetime"]
_CAPTION_HEADER = [":ID", "id", "text", "split", "group", "updated_at:datetime"]
_ATTRIBUTE_HEADER = [":ID", "name", "kind", "kinds:string[]", "updated_at:datetime"]
_REL_HEADERS = {
    HAS_ATTRIBUTE: [":START_ID", ":END_ID", "source", "confidence:double", "created_at:datetime"],
    MODIFIES: [":START_ID", ":END_ID"],
    TARGETS: [":START_ID", ":END_ID"],
    MENTIONS: [":START_ID", ":END_ID", "role"],
}
ARRAY_DELIMITER = "\x1f"  # between the values of a string[] cell (never inside an attribute name)


@dataclass
class CsvFiles:
    folder: Path
    nodes: list[tuple[str, Path]]  # (label, file), in the order the importer reads them: ids ascend across them
    relationships: dict[str, list[Path]]  # type -> its files (one a round, each with its header)
    counts: dict[str, int]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cycle collector off while a catalog streams through: millions of live records make every
    full collection walk them all, for nothing (measured at a million products: 73 s with it, 49 s
    without). Records hold no reference cycles; the collector is back on afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_import_csv(chunks: Iterable[Chunk], folder: Path, source: str = "catalog",
                     attribute_source: str = "catalog", start_phase: StartPhase = no_progress,
                     batch_size: int = 10_000, round_products: int = ROUND_PRODUCTS,
                     parallel: bool | None = None) -> CsvFiles:
    """The catalog as the CSV files ``neo4j-admin database import --id-type=actual`` reads (checked as
    for bulk_create).

    Each round of records is checked and numbered as it streams: first the attributes it names that no
    earlier round did, then its images, then its captions. Its files (one per label and relationship type)
    are then written, with ``parallel`` (default: where the machine has more than one core and can fork)
    by a forked child while this process reads and checks the next round, so that reading the catalog and
    writing it use two cores. Node ids ascend within every file and across the node files in the order
    the importer reads them; the attribute files are written last (an attribute's kinds are known only at
    the end) and read first of their round."""
    if parallel is None:
        parallel = hasattr(os, "fork") and (os.cpu_count() or 1) > 1
    with _cyclic_gc_paused():
        return _write_import_csv(chunks, folder, source, attribute_source, start_phase, batch_size, round_products,
                                 parallel)


def _write_import_csv(chunks: Iterable[Chunk], folder: Path, source: str, attribute_source: str,
                      start_phase: StartPhase, batch_size: int, round_products: int, parallel: bool) -> CsvFiles:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    catalog = _Catalog(source)
    next_id = 0
    image_node: dict[str, int] = {}
    attribute_node: dict[str, int] = {}
    node_files: list[tuple[str, Path]] = []
    rel_files: dict[str, list[Path]] = {rel: [] for rel in _REL_HEADERS}
    attribute_rounds: list[tuple[Path, list[str]]] = []  # written at the end
    counts = dict.fromkeys(["Image", "Caption", "Attribute", *_REL_HEADERS], 0)
    writing: tuple[int, _RoundFiles] | None = None  # the child writing a round's files, and their paths
    advance = start_phase("CSV for the importer", 0)
    try:
        for k, (images, queries) in enumerate(_rounds(chunks, round_products)):
            for batch in _batches(images, batch_size):
                catalog.image_batch(batch)
            catalog.query_batch(queries)
            new = [name for name in dict.fromkeys(
                [a.name for r in images for a in r.attributes]
                + [name for q in queries for name in (*q.added, *q.removed, *q.mentioned)])
                if name not in attribute_node]
            if new:
                path = folder / f"attributes-{k:05d}.csv"
                node_files.append(("Attribute", path))
                attribute_rounds.append((path, new))
                for name in new:
                    attribute_node[name] = next_id
                    next_id += 1
            first_image = next_id
            for r in images:
                image_node[r.id] = next_id
                next_id += 1
            first_caption = next_id
            next_id += len(queries)
            paths = _RoundFiles(folder, k)
            node_files += [("Image", paths.images), ("Caption", paths.captions)]
            for rel in _REL_HEADERS:
                rel_files[rel].append(paths.rels[rel])
            counts["Image"] += len(images)
            counts["Caption"] += len(queries)
            job = (paths, images, queries, first_image, first_caption, image_node, attribute_node, now, attribute_source)
            if parallel:
                if writing is not None:  # one child writing at a time: this process and it fill two cores
                    _reap(*writing, counts)
                writing = (_fork(_write_round, job, paths.counts), paths)
            else:
                for rel, n in _write_round(*job).items():
                    counts[rel] += n
            advance(len(images) + len(queries))
        if writing is not None:
            _reap(*writing, counts)
            writing = None
        for path, names in attribute_rounds:
            with open(path, "w", encoding="utf-8", newline="") as fh:
                out = csv.writer(fh)
                out.writerow(_ATTRIBUTE_HEADER)
                for name in names:
                    out.writerow([attribute_node[name], name, catalog.kind[name],
                                  ARRAY_DELIMITER.join(catalog.kinds[name]), now])
        counts["Attribute"] = len(attribute_node)
    finally:
        if writing is not None:  # a failure here: no child is left writing into the folder
            with contextlib.suppress(OSError):
                os.waitpid(writing[0], 0)
    return CsvFiles(folder, node_files, rel_files, counts)


@dataclass
class _RoundFiles:
    folder: Path
    round: int

    @property
    def images(self) -> Path:
        return self.folder / f"images-{self.round:05d}.csv"

    @property
    def captions(self) -> Path:
        return self.folder / f"captions-{self.round:05d}.csv"

    @property
    def rels(self) -> dict[str, Path]:
        return {rel: self.folder / f"{rel.lower()}-{self.round:05d}.csv" for rel in _REL_HEADERS}

    @property
    def counts(self) -> Path:
        return self.folder / f"counts-{self.round:05d}.json"


def _write_round(paths: _RoundFiles, images: Sequence[ImageRecord], queries: Sequence[QueryRecord],
                 first_image: int, first_caption: int, image_node: dict[str, int], attribute_node: dict[str, int],
                 now: str, attribute_source: str) -> dict[str, int]:
    """One round's node and relationship files, numbered as :func:`_write_import_csv` decided; returns how
    many relationships of each type it wrote."""
    tail = f",{_csv_cell(attribute_source)},1.0,{now}\n"
    has_cell = {name: f",{n}{tail}" for name, n in attribute_node.items()}  # the end of a HAS_ATTRIBUTE row
    role_cell = {role: {name: f",{n},{_csv_cell(role)}\n" for name, n in attribute_node.items()}
                 for role in CAPTION_ROLES}
    rows: dict[str, list[str]] = {rel: [",".join(header) + "\n"] for rel, header in _REL_HEADERS.items()}
    with open(paths.images, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(_IMAGE_HEADER)
        has_rows = rows[HAS_ATTRIBUTE]
        for n, r in enumerate(images, first_image):
            out.writerow([n, r.id, r.title, r.image_path, r.split, r.group, now])
            has_rows.extend(f"{n}{has_cell[name]}" for name in dict.fromkeys(a.name for a in r.attributes))
    with open(paths.captions, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(_CAPTION_HEADER)
        modifies, targets, mentions = rows[MODIFIES], rows[TARGETS], rows[MENTIONS]
        for n, q in enumerate(queries, first_caption):
            out.writerow([n, q.id, q.text, q.split, q.group, now])
            modifies.append(f"{n},{image_node[q.candidate_id]}\n")
            if q.target_id:
                targets.append(f"{n},{image_node[q.target_id]}\n")
            for role, names in zip(CAPTION_ROLES, (q.added, q.removed, q.mentioned), strict=True):
                cells = role_cell[role]
                mentions.extend(f"{n}{cells[name]}" for name in dict.fromkeys(names))
    for rel, lines in rows.items():
        with open(paths.rels[rel], "w", encoding="utf-8", newline="") as fh:
            fh.write("".join(lines))
    return {rel: len(lines) - 1 for rel, lines in rows.items()}


def _fork(work: Any, args: tuple, counts_file: Path) -> int:
    """``work(*args)`` in a forked child (it sees this process's memory as it is now, nothing is copied to
    it), which writes the counts it returns to ``counts_file`` and exits; returns its pid."""
    pid = os.fork()
    if pid == 0:  # the child: only writes files, never returns into the caller's code
        code = 1
        try:
            counts_file.write_text(json.dumps(work(*args)), encoding="utf-8")
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _reap(pid: int, paths: _RoundFiles, counts: dict[str, int]) -> None:
    """Wait for the child writing ``paths`` and add the counts it wrote; its failure is an error."""
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not paths.counts.exists():
        raise RuntimeError(f"writing the importer's CSV of round {paths.round + 1} failed (its error is printed "
                           "above); nothing was loaded")
    for rel, n in json.loads(paths.counts.read_text(encoding="utf-8")).items():
        counts[rel] += n


def _csv_cell(value: str) -> str:
    """One CSV cell as the csv module would write it (quoted when it holds a delimiter, quote or line end)."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def import_memory() -> str:
    """Off-heap memory the importer may use: ``TAILOR_IMPORT_MEMORY`` (default 2g; it otherwise takes
    most of the machine's free memory, which is not ours to take on a shared machine). At a million
    products 1g made it link relationships in several passes (11 s against 3 s with more)."""
    from graphdb.server.manager import _memory_setting

    return _memory_setting("TAILOR_IMPORT_MEMORY", "2g")


def run_importer(home: Path, files: CsvFiles, database: str = "neo4j", log: Path | None = None) -> float:
    """``neo4j-admin database import full`` into ``home`` (a stopped server's Neo4j home); seconds taken."""
    from graphdb.server.manager import JVM_FLAGS, _checked_java, server_classpath

    java = _checked_java()
    # 1g: what the importer asks for at a million products (it warns that 512m may be too small)
    cmd = [java, "-Xmx1g", *JVM_FLAGS, "-cp", server_classpath(build=True), "org.neo4j.cli.AdminTool",
           "database", "import", "full", database, "--overwrite-destination=true", "--id-type=actual",
           f"--array-delimiter={ARRAY_DELIMITER}",
           f"--max-off-heap-memory={import_memory()}", f"--threads={max(1, os.cpu_count() or 1)}"]
    cmd += [f"--nodes={label}={path}" for label, path in files.nodes]
    cmd += [f"--relationships={rel}={path}" for rel, paths in files.relationships.items() for path in paths]
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
    round_products: int = ROUND_PRODUCTS,
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
        files = write_import_csv(chunks, folder, source, attribute_source, start_phase,
                                 round_products=round_products)
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
