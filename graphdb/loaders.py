"""Whole loads: read a dataset with ``readers``, then write it with ``graphdb.ingest``.

Each loader returns a :class:`LoadSummary`; progress is reported through a callback so the CLI owns
the progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neo4j import Driver

from graphdb.bulk import BulkReport, bulk_create, bulk_import
from graphdb.ingest import IngestReport, ingest_images, ingest_queries
from readers.captions import Vocabulary, caption_split_attributes
from readers.catalog import MYNTRA, ColumnMapping, missing_images, read_catalog
from readers.composed import ComposedConfig, load_or_build
from readers.progress import StartPhase, no_progress
from readers.records import AttributeValue, ImageRecord, QueryRecord, ReaderError

# (phase, total) starts a bar; (phase, advance) moves it.


@dataclass
class LoadSummary:
    images: IngestReport = field(default_factory=IngestReport)
    queries: IngestReport = field(default_factory=IngestReport)
    query_counts: dict = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)

    @property
    def created(self) -> int:
        return (
            self.images.nodes_created
            + self.images.relationships_created
            + self.queries.nodes_created
            + self.queries.relationships_created
        )

    @property
    def relationships_per_second(self) -> float:
        rels = self.images.relationships_created + self.queries.relationships_created
        secs = self.images.seconds + self.queries.seconds
        return rels / secs if secs else 0.0


def _check_missing(records: list[ImageRecord], source: str, strict: bool) -> list[str]:
    missing = missing_images(records)
    if strict and missing:
        first = missing[0]
        raise ReaderError(
            source, first.source_line, f"image file not found: {first.image_path} ({len(missing)} missing)", "image"
        )
    return [r.id for r in missing]


def with_caption_split(records: list[ImageRecord]) -> list[ImageRecord]:
    """Add the paper's caption-split attributes (first word, rest of the title) with kind ``caption``."""
    out = []
    for r in records:
        extra = tuple(AttributeValue("caption", v) for v in caption_split_attributes(r.title))
        out.append(ImageRecord(r.id, r.title, r.image_path, r.split, r.group, extra, r.source_line))
    return out


def load_catalog(
    driver: Driver,
    path: Path,
    split_file: Path,
    mapping: ColumnMapping = MYNTRA,
    composed: ComposedConfig | None = None,
    limit: int | None = None,
    strict: bool = False,
    caption_split: bool = False,
    batch_size: int = 5000,
    start_phase: StartPhase = no_progress,
) -> LoadSummary:
    """Products, their catalog attributes, and Fashion200K-style composed queries split by group."""
    summary = LoadSummary()
    records = list(read_catalog(path, mapping, limit=limit))
    summary.missing_images = _check_missing(records, str(path), strict)
    queries = load_or_build(split_file, records, composed)
    summary.query_counts = queries.counts()
    records = list(queries.assign(records))
    summary.images = ingest_images(
        driver, records, str(path), batch_size=batch_size, progress=start_phase("images", len(records))
    )
    if caption_split:
        summary.images.merge(
            ingest_images(
                driver, with_caption_split(records), str(path), attribute_source="caption",
                batch_size=batch_size, progress=start_phase("caption-split attributes", len(records)),
            )
        )
    summary.queries = ingest_queries(
        driver, queries.queries, str(split_file), batch_size=batch_size,
        progress=start_phase("queries", len(queries.queries)),
    )
    return summary


@dataclass
class BulkLoadSummary:
    """A bulk first load: what :mod:`graphdb.bulk` wrote, and the composed queries' counts."""

    bulk: BulkReport
    query_counts: dict = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)
    caption_split: IngestReport | None = None


def load_catalog_bulk(
    driver: Driver | None,
    path: Path,
    split_file: Path,
    mapping: ColumnMapping = MYNTRA,
    composed: ComposedConfig | None = None,
    limit: int | None = None,
    strict: bool = False,
    caption_split: bool = False,
    server: Any = None,
    driver_for: Any = None,
    start_phase: StartPhase = no_progress,
) -> BulkLoadSummary:
    """What :func:`load_catalog` loads, into an EMPTY database, through :mod:`graphdb.bulk`: batched CREATE
    over ``driver``, or, given the local ``server`` (and ``driver_for()`` opening drivers to it), Neo4j's
    offline importer. Caption-split attributes, if asked for, then go in through the incremental path."""
    records = list(read_catalog(path, mapping, limit=limit))
    missing = _check_missing(records, str(path), strict)
    queries = load_or_build(split_file, records, composed)
    records = list(queries.assign(records))
    chunks = [(records, queries.queries)]
    if server is not None:
        report = bulk_import(server, driver_for, chunks, source=str(path), start_phase=start_phase)
    else:
        report = bulk_create(driver, chunks, source=str(path), start_phase=start_phase)
    summary = BulkLoadSummary(report, queries.counts(), missing)
    if caption_split:
        own = driver is None
        driver = driver_for() if own else driver
        try:
            summary.caption_split = ingest_images(
                driver, with_caption_split(records), str(path), attribute_source="caption",
                progress=start_phase("caption-split attributes", len(records)))
        finally:
            if own:
                driver.close()
    return summary


def load_fashioniq(
    driver: Driver,
    root: Path,
    split: str = "val",
    images_dir: Path | None = None,
    limit: int | None = None,
    batch_size: int = 5000,
    start_phase: StartPhase = no_progress,
) -> LoadSummary:
    """FashionIQ triplets of one split; metadata-only when ``images_dir`` is None."""
    from readers.fashioniq import fashioniq_vocabulary, read_fashioniq_images, read_fashioniq_queries

    summary = LoadSummary()
    images = list(read_fashioniq_images(root, split, images_dir=images_dir))
    vocab = Vocabulary(fashioniq_vocabulary(root))
    queries: list[QueryRecord] = list(read_fashioniq_queries(root, split, vocabulary=vocab))
    if limit is not None:
        queries = queries[:limit]
        keep = {q.candidate_id for q in queries} | {q.target_id for q in queries if q.target_id}
        images = [r for r in images if r.id in keep]
    summary.query_counts = {"queries": len(queries), "by_split": {split: len(queries)}}
    summary.images = ingest_images(
        driver, images, str(root), batch_size=batch_size, progress=start_phase("images", len(images))
    )
    summary.queries = ingest_queries(
        driver, queries, str(root / "captions"), batch_size=batch_size,
        progress=start_phase("queries", len(queries)),
    )
    return summary


def load_fashion200k(
    driver: Driver,
    root: Path,
    limit: int | None = None,
    batch_size: int = 5000,
    start_phase: StartPhase = no_progress,
) -> LoadSummary:
    """Fashion200K train and test images (caption-split attributes) and TIRG's queries."""
    from readers.fashion200k import CaptionIndex, read_fashion200k_images, read_fashion200k_test_queries

    summary = LoadSummary()
    train = list(read_fashion200k_images(root, "train"))[:limit]
    test = list(read_fashion200k_images(root, "test"))[:limit]
    images = train + test
    summary.missing_images = [r.id for r in missing_images(images)] if any(r.image_path for r in images) else []
    queries = list(CaptionIndex.build(train).training_queries()) + read_fashion200k_test_queries(root, test)
    summary.query_counts = {"queries": len(queries)}
    summary.images = ingest_images(
        driver, images, str(root / "labels"), attribute_source="caption", batch_size=batch_size,
        progress=start_phase("images", len(images)),
    )
    summary.queries = ingest_queries(
        driver, queries, str(root / "test_queries.txt"), batch_size=batch_size,
        progress=start_phase("queries", len(queries)),
    )
    return summary
