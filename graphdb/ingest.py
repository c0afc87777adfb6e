"""Writing records into Neo4j: batched ``UNWIND``, one transaction per batch.

Idempotent (a second run creates nothing) and so resumable: an interrupted load is finished by
running it again. Before a batch writes anything it is checked against the graph: an id that exists
with different data, or a caption that names an unknown image, fails the whole batch (the transaction
rolls back) with an error naming the source file, line and field.

How a batch is written (figures: ``benchmarks/bench_ingest.py``):

1. Python folds the batch (an id given twice is one row) and builds the parameters before the
   transaction opens, so a transaction holds its locks only while the server works;
2. one read finds which ids of the batch exist already (and, for queries, which images are unknown);
3. only for ids that exist, a second read returns those whose stored data or edges differ from the
   batch, with the edges they lack; the conflict checks run on these in Python, so errors name the row;
4. new ids get ``CREATE`` for the node and all its relationships in one statement. Nothing can point
   at a node that did not exist, so there is nothing to ``MERGE`` against: ``MERGE`` of a relationship
   to a dense attribute node costs an ``Expand(Into)`` per row on top of two locking index seeks per
   edge. The endpoint nodes are looked up once per batch into a list that rows point into by position,
   and ``FOREACH`` creates the edges without a row per edge. (PROFILE of myntra-small's first 5,000
   images: 327k db hits, was 692k; of 5,000 captions: 88k, was 273k. The rest of the server's time is
   Neo4j's own commit: records, indexes, counts, and garbage collection of the transaction state.)
5. ids that exist get ``MERGE`` only for the relationships found missing: none on a rerun, which
   therefore writes nothing.

A catalog row for an id the graph holds (a product that changed) is, by default, refused when its title
or image path differs (the catalog file is more likely wrong than the product renamed); only what the node
lacks is added. With ``update=True`` (``tailor load catalog --update``) the row wins: a non-empty title or
image path replaces the stored one (an empty cell keeps it), and the image's HAS_ATTRIBUTE edges of the
load's source become exactly the row's attributes (an emptied cell removes that attribute; edges of other
sources, user tags and likes are kept). Every image whose node or edges a load changes gets
``updated_at``, so ``tailor sync`` re-reads it (and, when the file changed, featurises it again).

Batches run on ``workers`` threads (default 2): one transaction executes while another commits and
Python packs the next. A concurrent writer that creates one of our new ids between the read and the
write makes ``CREATE`` hit the unique constraint; the batch is then retried (the read now sees the id).
Deadlocks between concurrent batches are transient errors, which ``execute_write`` retries.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from neo4j import Driver, ManagedTransaction, ResultSummary
from neo4j.exceptions import ConstraintError, IncompleteCommit

from readers.graph_records import CAPTION_ROLES
from readers.records import ImageRecord, QueryRecord, ReaderError

__all__ = ["IngestError", "IngestReport", "batched", "default_workers", "ingest_images", "ingest_queries"]

T = TypeVar("T")
Progress = Callable[[int], None]

_CONSTRAINT_RETRIES = 3  # a batch that keeps racing another writer this often is a real error


class IngestError(ReaderError):
    """A batch was refused; nothing of it was written."""


@dataclass
class IngestReport:
    rows: int = 0
    batches: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0
    relationships_deleted: int = 0
    seconds: float = 0.0
    missing_images: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # ids that existed and whose node or edges changed

    def add_counters(self, counters) -> None:
        self.nodes_created += counters.nodes_created
        self.relationships_created += counters.relationships_created
        self.properties_set += counters.properties_set
        self.relationships_deleted += counters.relationships_deleted

    def merge(self, other: IngestReport) -> IngestReport:
        self.rows += other.rows
        self.batches += other.batches
        self.nodes_created += other.nodes_created
        self.relationships_created += other.relationships_created
        self.properties_set += other.properties_set
        self.relationships_deleted += other.relationships_deleted
        self.seconds += other.seconds
        self.missing_images += other.missing_images
        self.changed += [i for i in other.changed if i not in set(self.changed)]
        return self


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


# --- Cypher (all parameterised; the only text that varies is chosen from fixed constants) ---------
# Rows are lists, not maps: no key strings to pack and unpack per row. Reads return one record with
# collected lists, because the driver pays per record.

_EXISTING_IMAGES = """
UNWIND $ids AS id
MATCH (i:Image {id: id})
RETURN collect(id) AS existing
"""

# Existing images whose stored data or edges differ from the batch; rows are
# [id, title, image_path, split, group, [attribute name]]. Python decides what a difference means.
# ``extra``: edges of this source the row no longer lists (only looked at with $update).
_DIFF_IMAGES = """
UNWIND $rows AS r
MATCH (i:Image {id: r[0]})
WITH r, i, [(i)-[h:HAS_ATTRIBUTE]->(a:Attribute) WHERE h.source = $source | a.name] AS have
WITH r, i, [n IN r[5] WHERE NOT n IN have] AS missing,
     CASE WHEN $update THEN [n IN have WHERE NOT n IN r[5]] ELSE [] END AS extra
WHERE size(missing) + size(extra) > 0
   OR NOT coalesce([i.title, i.image_path, i.split, i.group] = r[1..5], false)
RETURN collect([r[0], i.title, i.image_path, i.split, i.group, missing, extra]) AS differ
"""

_MERGE_ATTRIBUTES = """
UNWIND $attrs AS a
MERGE (x:Attribute {name: a.name})
ON CREATE SET x.kind = a.kind, x.kinds = [a.kind], x.updated_at = datetime()
WITH x, a WHERE NOT a.kind IN x.kinds
SET x.kinds = x.kinds + a.kind
"""

# New images with their edges. Rows are [id, title, image_path, split, group, [position in $attrs]].
# The WHERE checks the looked-up list lines up with $attrs; if not, nothing is written (see _create).
# FOREACH, not UNWIND + MATCH: no per-edge row or index seek (a third less server time).
_CREATE_IMAGES = """
CALL () { UNWIND $attrs AS name MATCH (x:Attribute {name: name}) RETURN collect(x) AS attrs }
WITH attrs WHERE [x IN attrs | x.name] = $attrs
UNWIND $rows AS r
CREATE (i:Image {id: r[0], title: r[1], image_path: r[2], split: r[3], group: r[4], updated_at: datetime()})
FOREACH (a IN [k IN r[5] | attrs[k]] |
  CREATE (i)-[:HAS_ATTRIBUTE {source: $source, confidence: 1.0, created_at: datetime()}]->(a))
"""

# Existing images whose split or group the batch changes (a non-empty value wins, as before).
_UPDATE_IMAGES = """
UNWIND $rows AS r
MATCH (i:Image {id: r[0]})
SET i.split = r[1], i.group = r[2]
"""

# Changed products (``update``), and products that gained or lost edges: marked for ``tailor sync``.
# Rows are [id, title, image_path].
_REVISE_IMAGES = """
UNWIND $rows AS r
MATCH (i:Image {id: r[0]})
SET i.title = r[1], i.image_path = r[2], i.updated_at = datetime()
"""

# Edges of this source a changed row no longer lists.
_DELETE_HAS_ATTRIBUTE = """
UNWIND $edges AS e
MATCH (:Image {id: e[0]})-[r:HAS_ATTRIBUTE {source: $source}]->(:Attribute {name: e[1]})
DELETE r
"""

# Missing edges of existing nodes: MERGE keeps them single even against a concurrent writer.
_MERGE_HAS_ATTRIBUTE = """
UNWIND $edges AS e
MATCH (i:Image {id: e[0]})
MATCH (a:Attribute {name: e[1]})
MERGE (i)-[r:HAS_ATTRIBUTE {source: $source}]->(a)
ON CREATE SET r.confidence = 1.0, r.created_at = datetime()
"""

_PROBE_QUERIES = """
CALL () {
  UNWIND $refs AS id
  OPTIONAL MATCH (i:Image {id: id})
  WITH id WHERE i IS NULL
  RETURN collect(id) AS unknown
}
CALL () {
  UNWIND $ids AS id
  MATCH (c:Caption {id: id})
  RETURN collect(id) AS existing
}
RETURN unknown, existing
"""

# Rows are [id, text, [candidate], [target], [added], [removed], [mentioned]] (attribute names); returns
# the edges each lacks.
_DIFF_CAPTIONS = """
UNWIND $rows AS r
MATCH (c:Caption {id: r[0]})
WITH r, c,
     [(c)-[:MODIFIES]->(x:Image) | x.id] AS mods,
     [(c)-[:TARGETS]->(x:Image) | x.id] AS tgts,
     [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, m.role]] AS mens
WITH r, c, [i IN r[2] WHERE NOT i IN mods] AS mods, [i IN r[3] WHERE NOT i IN tgts] AS tgts,
     [n IN r[4] WHERE NOT [n, 'added'] IN mens | [n, 'added']]
     + [n IN r[5] WHERE NOT [n, 'removed'] IN mens | [n, 'removed']]
     + [n IN r[6] WHERE NOT [n, 'mentioned'] IN mens | [n, 'mentioned']] AS mens
WHERE size(mods) + size(tgts) + size(mens) > 0 OR NOT coalesce(c.text = r[1], false)
RETURN collect([r[0], c.text, mods, tgts, mens]) AS differ
"""

_MERGE_ATTRIBUTE_NAMES = """
UNWIND $names AS name
MERGE (x:Attribute {name: name})
ON CREATE SET x.kind = 'unknown', x.kinds = [], x.updated_at = datetime()
"""

# New captions with their edges. Rows are [id, text, split, group, candidate position,
# [target position], [added], [removed], [mentioned]] (the last three: attribute positions, one per role).
_CREATE_CAPTIONS = """
CALL () { UNWIND $images AS id MATCH (x:Image {id: id}) RETURN collect(x) AS images }
CALL () { UNWIND $attrs AS name MATCH (x:Attribute {name: name}) RETURN collect(x) AS attrs }
WITH images, attrs WHERE [x IN images | x.id] = $images AND [x IN attrs | x.name] = $attrs
UNWIND $rows AS r
WITH r, images, attrs, images[r[4]] AS cand
CREATE (c:Caption {id: r[0], text: r[1], split: r[2], group: r[3], updated_at: datetime()})
CREATE (c)-[:MODIFIES]->(cand)
FOREACH (t IN [k IN r[5] | images[k]] | CREATE (c)-[:TARGETS]->(t))
FOREACH (a IN [k IN r[6] | attrs[k]] | CREATE (c)-[:MENTIONS {role: 'added'}]->(a))
FOREACH (a IN [k IN r[7] | attrs[k]] | CREATE (c)-[:MENTIONS {role: 'removed'}]->(a))
FOREACH (a IN [k IN r[8] | attrs[k]] | CREATE (c)-[:MENTIONS {role: 'mentioned'}]->(a))
"""

_MERGE_MODIFIES = """
UNWIND $edges AS e
MATCH (c:Caption {id: e[0]})
MATCH (i:Image {id: e[1]})
MERGE (c)-[:MODIFIES]->(i)
"""

_MERGE_TARGETS = """
UNWIND $edges AS e
MATCH (c:Caption {id: e[0]})
MATCH (i:Image {id: e[1]})
MERGE (c)-[:TARGETS]->(i)
"""

_MERGE_MENTIONS = """
UNWIND $edges AS e
MATCH (c:Caption {id: e[0]})
MATCH (a:Attribute {name: e[1]})
MERGE (c)-[:MENTIONS {role: e[2]}]->(a)
"""


def _run(tx: ManagedTransaction, query: str, summaries: list[ResultSummary], **params: Any) -> None:
    summaries.append(tx.run(query, **params).consume())


def _create(tx: ManagedTransaction, query: str, summaries: list[ResultSummary], rows: list[list[Any]],
            **params: Any) -> None:
    """Runs a _CREATE_* statement: one node per row, else its node lists did not line up."""
    summary = tx.run(query, rows=rows, **params).consume()
    if summary.counters.nodes_created != len(rows):
        # Only if a looked-up node vanished meanwhile: refuse the batch rather than write part of it.
        created = summary.counters.nodes_created
        raise RuntimeError(f"ingest: created {created} of {len(rows)} nodes; the batch was rolled back")
    summaries.append(summary)


class _Positions(dict[str, int]):
    """Keys numbered in first-seen order: rows carry the number, the key list goes once per statement."""

    def of(self, key: str) -> int:
        return self.setdefault(key, len(self))


# --- images --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ImageRow:
    """One image id of a batch (repeats folded in) and the line it first came from."""

    id: str
    title: str
    image_path: str
    split: str
    group: str
    line: int
    attrs: list[str]  # attribute names, in order, without repeats


@dataclass
class _ImageBatch:
    rows: dict[str, _ImageRow]
    attrs: list[dict[str, str]]  # {name, kind}, sorted: concurrent batches MERGE (and lock) in one order
    names: _Positions  # the attribute names that the CREATE rows point into
    new_rows: dict[str, list[Any]]  # image id -> its _CREATE_IMAGES row, used when the id is new
    changed: list[str] = field(default_factory=list)  # set by the write: existing ids it changed


def _conflict(stored: object, given: str) -> bool:
    # As before: an empty given value never conflicts, nor does a property the node lacks.
    return given != "" and stored is not None and stored != given


def _image_conflict_error(source_path: str, line: int, image_id: str, name: str, stored: object,
                          given: str, in_graph: bool = True) -> IngestError:
    hint = "; if the product changed, load the catalog with --update" if in_graph else ""
    return IngestError(
        source_path, line, f"image id {image_id!r} already exists with {name} {stored!r}, not {given!r}{hint}",
        name,
    )


def _prepare_images(batch: list[ImageRecord], source_path: str) -> _ImageBatch:
    rows: dict[str, _ImageRow] = {}
    for r in batch:
        names = list(dict.fromkeys(a.name for a in r.attributes))
        row = rows.get(r.id)
        if row is None:
            rows[r.id] = _ImageRow(r.id, r.title, r.image_path, r.split, r.group, r.source_line, names)
            continue
        for name in ("title", "image_path"):  # the same rules as against the graph
            if _conflict(getattr(row, name), getattr(r, name)):
                raise _image_conflict_error(source_path, r.source_line, r.id, name, getattr(row, name),
                                            getattr(r, name), in_graph=False)
        row.split = r.split or row.split
        row.group = r.group or row.group
        row.attrs += [n for n in names if n not in row.attrs]
    pairs = sorted({(a.name, a.kind) for r in batch for a in r.attributes})
    attrs = [{"name": n, "kind": k} for n, k in pairs]
    positions = _Positions()
    name_of = positions.of
    new_rows = {r.id: [r.id, r.title, r.image_path, r.split, r.group, [name_of(n) for n in r.attrs]]
                for r in rows.values()}
    return _ImageBatch(rows, attrs, positions, new_rows)


def _write_image_batch(
    tx: ManagedTransaction, prepared: _ImageBatch, source_path: str, attribute_source: str,
    update: bool = False,
) -> list[ResultSummary]:
    rows = prepared.rows
    existing = tx.run(_EXISTING_IMAGES, ids=list(rows)).single(strict=True)["existing"]
    differ = []
    if existing:
        diff_rows = [[r.id, r.title, r.image_path, r.split, r.group, r.attrs]
                     for r in map(rows.__getitem__, existing)]
        differ = tx.run(_DIFF_IMAGES, rows=diff_rows, source=attribute_source,
                        update=update).single(strict=True)["differ"]
    differ.sort(key=lambda d: rows[d[0]].line)  # the first row at fault is the one reported
    updates, edges, dropped, revised = [], [], [], []
    for image_id, title, image_path, split, group, missing, extra in differ:
        row = rows[image_id]
        values = {"title": title, "image_path": image_path}
        for name, stored in (("title", title), ("image_path", image_path)):
            given = getattr(row, name)
            if update and given and given != stored:
                values[name] = given
            elif _conflict(stored, given):
                raise _image_conflict_error(source_path, row.line, image_id, name, stored, given)
        new_split, new_group = row.split or split, row.group or group
        if (new_split, new_group) != (split, group):
            updates.append([image_id, new_split, new_group])
        edges += [[image_id, name] for name in missing]
        dropped += [[image_id, name] for name in extra]
        if missing or extra or values != {"title": title, "image_path": image_path}:
            revised.append([image_id, values["title"], values["image_path"]])
    summaries: list[ResultSummary] = []
    if prepared.attrs:
        _run(tx, _MERGE_ATTRIBUTES, summaries, attrs=prepared.attrs)
    known = set(existing)
    new = [r for i, r in prepared.new_rows.items() if i not in known]
    if new:
        _create(tx, _CREATE_IMAGES, summaries, new, attrs=list(prepared.names), source=attribute_source)
    if updates:
        _run(tx, _UPDATE_IMAGES, summaries, rows=updates)
    if revised:
        _run(tx, _REVISE_IMAGES, summaries, rows=revised)
    if dropped:
        _run(tx, _DELETE_HAS_ATTRIBUTE, summaries, edges=dropped, source=attribute_source)
    if edges:
        _run(tx, _MERGE_HAS_ATTRIBUTE, summaries, edges=edges, source=attribute_source)
    prepared.changed = [r[0] for r in revised]  # assigned, not appended: a retried transaction runs again
    return summaries


# --- queries -------------------------------------------------------------------------------------




@dataclass(slots=True)
class _CaptionRow:
    """One caption id of a batch (repeats folded in; lists in order, without repeats)."""

    id: str
    text: str
    split: str
    group: str
    line: int
    candidates: list[str]
    targets: list[str]
    by_role: tuple[tuple[str, ...], ...]  # attribute names added, removed, mentioned (as in CAPTION_ROLES)

    @property
    def mentions(self) -> list[tuple[str, str]]:
        """(attribute name, role) pairs."""
        return [(name, role) for role, names in zip(CAPTION_ROLES, self.by_role, strict=True) for name in names]


@dataclass
class _QueryBatch:
    records: list[QueryRecord]
    rows: dict[str, _CaptionRow]
    refs: list[str]  # every image id the batch names
    names: list[str]  # every attribute it names, sorted: concurrent batches MERGE (and lock) in one order


def _extend(have: list[Any], more: Iterable[Any]) -> None:
    have.extend(x for x in more if x not in have)


def _caption_conflict_error(source_path: str, line: int, caption_id: str, stored: object,
                            given: str) -> IngestError:
    return IngestError(
        source_path, line, f"caption id {caption_id!r} already exists with text {stored!r}, not {given!r}",
        "text",
    )


def _prepare_queries(batch: list[QueryRecord], source_path: str) -> _QueryBatch:
    # Plain loops over the records' own tuples: this runs for every caption, on the cores the server needs.
    rows: dict[str, _CaptionRow] = {}
    refs: dict[str, None] = {}
    names: set[str] = set()
    for q in batch:
        targets = [q.target_id] if q.target_id else []
        refs[q.candidate_id] = None
        refs.update(dict.fromkeys(targets))
        names.update(q.added, q.removed, q.mentioned)
        by_role = (q.added, q.removed, q.mentioned)
        if len(q.added) > 1 or len(q.removed) > 1 or len(q.mentioned) > 1:  # rare: may repeat a value
            by_role = tuple(tuple(dict.fromkeys(names)) for names in by_role)
        row = rows.get(q.id)
        if row is None:
            rows[q.id] = _CaptionRow(q.id, q.text, q.split, q.group, q.source_line, [q.candidate_id], targets,
                                     by_role)
            continue
        if row.text != q.text:
            raise _caption_conflict_error(source_path, q.source_line, q.id, row.text, q.text)
        _extend(row.candidates, [q.candidate_id])
        _extend(row.targets, targets)
        row.by_role = tuple(tuple(dict.fromkeys((*have, *more))) for have, more in zip(row.by_role, by_role,
                                                                                        strict=True))
    return _QueryBatch(batch, rows, list(refs), sorted(names))


def _create_caption_rows(rows: Iterable[_CaptionRow]) -> tuple[list[list[Any]], list[str], list[str]]:
    """_CREATE_CAPTIONS rows and the image ids and attribute names that they point into."""
    images: dict[str, int] = {}
    attrs: dict[str, int] = {}
    new = []
    for row in rows:
        cand = images.setdefault(row.candidates[0], len(images))
        if len(row.candidates) > 1:  # one id, two candidates (odd, but MERGE allowed it): the rest is MERGEd
            new.append([row.id, row.text, row.split, row.group, cand, [], [], [], []])
            continue
        added, removed, mentioned = row.by_role
        new.append([row.id, row.text, row.split, row.group, cand,
                    [images.setdefault(t, len(images)) for t in row.targets],
                    [attrs.setdefault(n, len(attrs)) for n in added],
                    [attrs.setdefault(n, len(attrs)) for n in removed],
                    [attrs.setdefault(n, len(attrs)) for n in mentioned]])
    return new, list(images), list(attrs)


def _write_query_batch(
    tx: ManagedTransaction, prepared: _QueryBatch, source_path: str
) -> list[ResultSummary]:
    rows = prepared.rows
    probe = tx.run(_PROBE_QUERIES, refs=prepared.refs, ids=list(rows)).single(strict=True)
    if probe["unknown"]:
        unknown = set(probe["unknown"])
        for q in prepared.records:  # the first row (and its first field) at fault
            for name, image_id in (("candidate", q.candidate_id), ("target", q.target_id)):
                if image_id in unknown:
                    message = f"refers to unknown image {image_id!r}"
                    raise IngestError(source_path, q.source_line, message, name)
    existing = probe["existing"]
    differ = []
    if existing:
        # (tuples pack as lists)
        diff_rows = [[r.id, r.text, r.candidates, r.targets, *r.by_role]
                     for r in map(rows.__getitem__, existing)]
        differ = tx.run(_DIFF_CAPTIONS, rows=diff_rows).single(strict=True)["differ"]
    differ.sort(key=lambda d: rows[d[0]].line)
    modifies, targets, mentions = [], [], []
    for caption_id, text, mods, tgts, mens in differ:
        row = rows[caption_id]
        if text is not None and text != row.text:
            raise _caption_conflict_error(source_path, row.line, caption_id, text, row.text)
        modifies += [[caption_id, i] for i in mods]
        targets += [[caption_id, i] for i in tgts]
        mentions += [[caption_id, n, role] for n, role in mens]
    known = set(existing)
    new_rows = [row for i, row in rows.items() if i not in known]
    for row in new_rows:
        if len(row.candidates) > 1:
            modifies += [[row.id, i] for i in row.candidates[1:]]
            targets += [[row.id, i] for i in row.targets]
            mentions += [[row.id, n, role] for n, role in row.mentions]
    new, images, attrs = _create_caption_rows(new_rows)  # before the first write takes locks
    summaries: list[ResultSummary] = []
    # Attributes a caption names but no image has yet still become nodes (kind unknown until tagged).
    if prepared.names:
        _run(tx, _MERGE_ATTRIBUTE_NAMES, summaries, names=prepared.names)
    if new:
        _create(tx, _CREATE_CAPTIONS, summaries, new, images=images, attrs=attrs)
    if modifies:
        _run(tx, _MERGE_MODIFIES, summaries, edges=modifies)
    if targets:
        _run(tx, _MERGE_TARGETS, summaries, edges=targets)
    if mentions:
        _run(tx, _MERGE_MENTIONS, summaries, edges=mentions)
    return summaries


# --- driving -------------------------------------------------------------------------------------


def default_workers() -> int:
    """Concurrent batch transactions: ``TAILOR_INGEST_WORKERS``, else 2.

    Two keep both cores of a small machine busy (one transaction executes while the other commits, and
    Python packs the next batch meanwhile); more mostly queue on the server's locks and CPU.
    """
    value = os.environ.get("TAILOR_INGEST_WORKERS", "2")
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"TAILOR_INGEST_WORKERS must be a whole number, not {value!r}") from None
    if workers < 1:
        raise ValueError(f"TAILOR_INGEST_WORKERS must be at least 1, not {workers}")
    return workers


Prepare = Callable[[list[Any], str], Any]
Write = Callable[..., list[ResultSummary]]


def _write_batch(driver: Driver, database: str | None, prepare: Prepare, write: Write, batch: list[Any],
                 args: tuple[Any, ...]) -> tuple[list[ResultSummary], list[str]]:
    """One batch in one transaction (a session per batch, so batches can run on several threads); returns
    its summaries and the existing ids it changed."""
    prepared = prepare(batch, args[0])  # outside the transaction: it then holds its locks for less time
    with driver.session(database=database) as session:
        for attempt in range(_CONSTRAINT_RETRIES):
            try:
                summaries = session.execute_write(write, prepared, *args)
                return summaries, list(getattr(prepared, "changed", []))
            except (ConstraintError, IncompleteCommit):
                # Another writer created one of our "new" ids after our read: read again. Or the connection
                # went at COMMIT, which the driver does not retry (it cannot know whether the commit
                # happened); the batch reads what exists inside its transaction, so running it again
                # writes only what is missing (its counters then miss what the first attempt wrote).
                if attempt == _CONSTRAINT_RETRIES - 1:
                    raise
    raise AssertionError("unreachable")


def _ingest(
    driver: Driver, items: Iterable[Any], prepare: Prepare, write: Write, args: tuple[Any, ...],
    batch_size: int, progress: Progress | None, database: str | None, workers: int | None,
) -> IngestReport:
    """Batches written by ``workers`` threads, accounted for (and progress reported) in input order.

    As with one worker, everything before the first failure is committed and nothing of the failing batch
    is, so a rerun finishes the job. A batch that fails stops the batches not yet started (those running
    finish); an error reading the input lets the batches read before it finish first.
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    report = IngestReport()
    start = time.perf_counter()

    def account(size: int, written: tuple[list[ResultSummary], list[str]]) -> None:
        summaries, changed = written
        report.changed += changed
        for s in summaries:
            report.add_counters(s.counters)
        report.rows += size
        report.batches += 1
        if progress:
            progress(size)

    if workers == 1:
        for batch in batched(items, batch_size):
            account(len(batch), _write_batch(driver, database, prepare, write, batch, args))
        report.seconds = time.perf_counter() - start
        return report

    pending: deque[tuple[int, Future[tuple[list[ResultSummary], list[str]]]]] = deque()

    def settle(keep: int) -> None:  # waits for the oldest batches until at most ``keep`` are pending
        while len(pending) > keep:
            size, future = pending.popleft()
            account(size, future.result())

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tailor-ingest")
    try:
        batches = batched(items, batch_size)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception:
                settle(0)  # bad input further on: what was read before it goes in
                raise
            settle(2 * workers - 1)  # a batch queued per worker, so none waits for the reader
            future = pool.submit(_write_batch, driver, database, prepare, write, batch, args)
            pending.append((len(batch), future))
        settle(0)
    finally:
        # After an error (or Ctrl-C) batches not yet started never start; running ones finish.
        pool.shutdown(wait=True, cancel_futures=True)
    report.seconds = time.perf_counter() - start
    return report


def ingest_images(
    driver: Driver,
    records: Iterable[ImageRecord],
    source_path: str,
    attribute_source: str = "catalog",
    batch_size: int = 5000,
    progress: Progress | None = None,
    database: str | None = None,
    *,
    workers: int | None = None,
    update: bool = False,
) -> IngestReport:
    """Images, their attributes and HAS_ATTRIBUTE {source} edges; one transaction per batch.

    ``workers`` batches run at once (default :func:`default_workers`); 1 writes strictly in order.
    ``update``: a row for an existing id replaces its title, image path and edges of this source (see the
    module doc); the report's ``changed`` lists the ids it changed.
    """
    return _ingest(driver, records, _prepare_images, _write_image_batch,
                   (source_path, attribute_source, update), batch_size, progress, database, workers)


def ingest_queries(
    driver: Driver,
    queries: Iterable[QueryRecord],
    source_path: str,
    batch_size: int = 5000,
    progress: Progress | None = None,
    database: str | None = None,
    *,
    workers: int | None = None,
) -> IngestReport:
    """Captions with MODIFIES (candidate), TARGETS (supervision) and MENTIONS {role} edges."""
    return _ingest(driver, queries, _prepare_queries, _write_query_batch, (source_path,), batch_size,
                   progress, database, workers)
