"""Attributes predicted from images, in and out of Neo4j.

Reads what the attribute classifier (``gnn.attributes.predictor``) needs that the export lacks: every kind of each
attribute name (``Attribute.kinds``; the export keeps one kind per name, and myntra names such as
"watches" are both an article type and a sub-category).

Writes predictions as ``(:Image)-[:HAS_ATTRIBUTE {source: 'predicted', confidence, model, created_at}]
->(:Attribute)``. Rules:

- **Replacement.** The predicted edges of an image are exactly its latest predictions above the
  threshold: for every image in a batch, edges no longer predicted are deleted, new ones created, and a
  changed confidence (or model version) is updated in place. Images not in the call are left alone.
- **Idempotent.** The batch first reads the images' current predicted edges and writes only the
  difference, so writing the same predictions again writes nothing (no edge created or deleted, no
  ``updated_at`` bumped: embeddings are not marked stale for nothing).
- **Atomic per batch.** Read, deletes and creates of a batch run in one transaction: a failure leaves the
  batch's images with their old predicted edges, never with none.
- **Only existing nodes.** Predictions come from the catalog vocabulary: Attribute and Image nodes are
  only MATCHed, never created; names or images the graph lacks are counted in the report and skipped.
- ``updated_at`` is set on the images whose predicted edges changed (an incremental
  ``tailor sync`` finds them by it). Edges of other sources (catalog, caption, user) are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from neo4j import Driver, ManagedTransaction

from graphdb.ingest import batched

__all__ = [
    "PREDICTED",
    "PredictedReport",
    "predicted_edge_counts",
    "read_attribute_kinds",
    "write_predictions",
]

PREDICTED = "predicted"
Progress = Callable[[int], None]

_ATTRIBUTE_KINDS = """
MATCH (a:Attribute)
RETURN a.name AS name, coalesce(a.kinds, CASE WHEN a.kind IS NULL THEN [] ELSE [a.kind] END) AS kinds
"""

# One read per batch: which images and names exist, and the images' current predicted edges.
_PROBE = """
CALL () { UNWIND $ids AS id MATCH (i:Image {id: id}) RETURN collect(id) AS found }
CALL () { UNWIND $names AS name MATCH (a:Attribute {name: name}) RETURN collect(name) AS known }
CALL () {
  UNWIND $ids AS id
  MATCH (:Image {id: id})-[r:HAS_ATTRIBUTE {source: $source}]->(a:Attribute)
  RETURN collect([id, a.name, r.confidence, r.model]) AS have
}
RETURN found, known, have
"""

_DELETE = """
UNWIND $pairs AS p
MATCH (:Image {id: p[0]})-[r:HAS_ATTRIBUTE {source: $source}]->(:Attribute {name: p[1]})
DELETE r
"""

_UPDATE = """
UNWIND $edges AS e
MATCH (:Image {id: e[0]})-[r:HAS_ATTRIBUTE {source: $source}]->(:Attribute {name: e[1]})
SET r.confidence = e[2], r.model = $model
"""

_CREATE = """
UNWIND $edges AS e
MATCH (i:Image {id: e[0]})
MATCH (a:Attribute {name: e[1]})
CREATE (i)-[:HAS_ATTRIBUTE {source: $source, confidence: e[2], model: $model, created_at: datetime()}]->(a)
"""

_TOUCH = """
UNWIND $ids AS id
MATCH (i:Image {id: id})
SET i.updated_at = datetime()
"""

_COUNT_BY_THRESHOLD = """
UNWIND $thresholds AS t
CALL (t) {
  MATCH (:Image)-[r:HAS_ATTRIBUTE {source: $source}]->(:Attribute)
  WHERE r.confidence >= t
  RETURN count(r) AS edges
}
RETURN t AS threshold, edges
"""

_TOLERANCE = 1e-6  # confidences that differ by less are the same (float noise between identical runs)


@dataclass
class PredictedReport:
    images: int = 0  # images in the input that exist in the graph
    images_changed: int = 0  # images whose predicted edges changed (updated_at set)
    created: int = 0
    deleted: int = 0
    updated: int = 0  # edges kept whose confidence or model changed
    unchanged: int = 0
    batches: int = 0
    missing_images: list[str] = field(default_factory=list)
    unknown_attributes: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def merge(self, other: PredictedReport) -> PredictedReport:
        for name in ("images", "images_changed", "created", "deleted", "updated", "unchanged", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.missing_images += other.missing_images
        self.unknown_attributes |= other.unknown_attributes
        return self

    @property
    def edges(self) -> int:
        """Predicted edges of the written images after the call."""
        return self.created + self.updated + self.unchanged


def read_attribute_kinds(driver: Driver, database: str | None = None) -> dict[str, list[str]]:
    """Attribute name -> every kind it has (``Attribute.kinds``, else its ``kind``)."""
    records, _, _ = driver.execute_query(_ATTRIBUTE_KINDS, database_=database)
    return {r["name"]: list(r["kinds"]) for r in records}


def _wanted(predictions: Iterable[Any], threshold: float) -> dict[str, float]:
    """An image's predictions (``(name, kind, confidence)`` or ``(name, confidence)``) -> name -> the
    highest confidence at or above the threshold: one edge per name, whichever kinds predicted it."""
    out: dict[str, float] = {}
    for p in predictions:
        name, confidence = p[0], float(p[-1])
        if confidence >= threshold and confidence > out.get(name, -1.0):
            out[name] = confidence
    return out


def _write_batch(
    tx: ManagedTransaction, rows: list[tuple[str, dict[str, float]]], model: str
) -> PredictedReport:
    """One batch; returns its counts (a fresh report per attempt: execute_write may rerun this)."""
    report = PredictedReport()
    ids = [image_id for image_id, _ in rows]
    names = sorted({n for _, wanted in rows for n in wanted})
    probe = tx.run(_PROBE, ids=ids, names=names, source=PREDICTED).single(strict=True)
    found, known = set(probe["found"]), set(probe["known"])
    # image id -> name -> its current predicted edges as (confidence, model); several only after a bug
    have: dict[str, dict[str, list[tuple[float | None, str | None]]]] = {}
    for image_id, name, confidence, version in probe["have"]:
        have.setdefault(image_id, {}).setdefault(name, []).append((confidence, version))

    deletes, updates, creates, changed = [], [], [], set()
    unchanged = 0
    for image_id, wanted in rows:
        if image_id not in found:
            report.missing_images.append(image_id)
            continue
        report.images += 1
        report.unknown_attributes.update(n for n in wanted if n not in known)
        wanted = {n: c for n, c in wanted.items() if n in known}
        current = have.get(image_id, {})
        for name in current:
            if name not in wanted:
                deletes.append([image_id, name])
                changed.add(image_id)
        for name, confidence in wanted.items():
            old = current.get(name, [])
            if len(old) == 1:
                old_conf, old_model = old[0]
                if old_conf is not None and abs(old_conf - confidence) <= _TOLERANCE and old_model == model:
                    unchanged += 1
                else:
                    updates.append([image_id, name, confidence])
                    changed.add(image_id)
                continue
            if old:  # duplicates (an older writer): replace them with one edge
                deletes.append([image_id, name])
            creates.append([image_id, name, confidence])
            changed.add(image_id)
    # Deletes first, then creates: a duplicated pair is deleted and created again in the same transaction.
    deleted = created = 0
    if deletes:
        deleted = tx.run(_DELETE, pairs=deletes, source=PREDICTED).consume().counters.relationships_deleted
    if updates:
        tx.run(_UPDATE, edges=updates, source=PREDICTED, model=model).consume()
    if creates:
        summary = tx.run(_CREATE, edges=creates, source=PREDICTED, model=model).consume()
        created = summary.counters.relationships_created
    if changed:
        tx.run(_TOUCH, ids=sorted(changed)).consume()
    report.deleted, report.created, report.updated = deleted, created, len(updates)
    report.unchanged, report.images_changed, report.batches = unchanged, len(changed), 1
    return report


def write_predictions(
    driver: Driver,
    predictions: Mapping[str, Iterable[Any]],
    threshold: float = 0.5,
    *,
    model: str = "",
    batch_size: int = 1000,
    database: str | None = None,
    progress: Progress | None = None,
) -> PredictedReport:
    """Make each given image's predicted edges its predictions at or above ``threshold``.

    ``predictions`` maps image id -> ``(name, kind, confidence)`` tuples (``gnn.attributes.Prediction``);
    an image mapped to nothing above the threshold loses its predicted edges. ``model`` (the classifier's
    version) is stored on the edges. One transaction per ``batch_size`` images.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], not {threshold}")
    start = time.perf_counter()
    report = PredictedReport()
    rows = [(image_id, _wanted(p, threshold)) for image_id, p in predictions.items()]
    with driver.session(database=database) as session:
        for batch in batched(rows, batch_size):
            report.merge(session.execute_write(_write_batch, batch, model))
            if progress:
                progress(len(batch))
    report.seconds = time.perf_counter() - start
    return report


def predicted_edge_counts(
    driver: Driver, thresholds: Iterable[float], database: str | None = None
) -> dict[float, int]:
    """Predicted edges in the graph with confidence >= each threshold."""
    records, _, _ = driver.execute_query(
        _COUNT_BY_THRESHOLD, thresholds=[float(t) for t in thresholds], source=PREDICTED, database_=database
    )
    return {r["threshold"]: r["edges"] for r in records}
