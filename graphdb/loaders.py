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
from graphdb.catalog import RetireReport, image_ids, retire_images
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
    new_images: list[str] = field(default_factory=list)  # ids the graph did not hold before this load
    skipped_queries: int = 0  # composed queries of the saved split naming a product this load lacks
    retired: RetireReport | None = None  # with replace: the products the file no longer lists

    @property
    def changed_images(self) -> list[str]:
        """Ids that existed and whose node or catalog edges this load changed."""
        return self.images.changed

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


class CatalogReplaceError(ValueError):
    """A ``replace`` load that would retire more of the catalog than it is allowed to; nothing written."""


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
    *,
    update: bool = False,
    replace: bool = False,
    max_retired_share: float = 0.5,
    exclude: frozenset[str] | set[str] = frozenset(),
) -> LoadSummary:
    """Products, their catalog attributes, and Fashion200K-style composed queries split by group.

    New ids are added; an existing id is left as it is, or (``update``) brought in line with its row (see
    :mod:`graphdb.ingest`). ``replace``: the file is the whole catalog, so products the graph holds and
    the file does not list are retired afterwards (:func:`graphdb.catalog.retire_images`); refused before
    anything is written when that would retire more than ``max_retired_share`` of them (a truncated
    export, most likely). ``exclude``: ids of the file to leave out, as if it did not list them.
    Composed queries come from the saved split (``split_file``, built on the first load); those naming a
    product this load does not have are skipped (counted), so a later catalog can leave products out.
    """
    if replace and (limit is not None or exclude):
        raise CatalogReplaceError("--replace needs the whole catalog: it cannot be combined with --limit")
    summary = LoadSummary()
    records = [r for r in read_catalog(path, mapping, limit=limit) if r.id not in exclude]
    summary.missing_images = _check_missing(records, str(path), strict)
    listed = {r.id for r in records}
    before = image_ids(driver)
    retire = sorted(before - listed) if replace else []
    if before and len(retire) > max_retired_share * len(before):
        raise CatalogReplaceError(
            f"{path}: --replace would retire {len(retire):,} of the {len(before):,} products in the graph "
            f"(more than {max_retired_share:.0%}); is the file complete? Nothing was written. Retire them on "
            "purpose with `tailor retire --file IDS`, or pass --force")
    summary.new_images = sorted(listed - before)
    queries = load_or_build(split_file, records, composed)
    summary.query_counts = queries.counts()
    records = list(queries.assign(records))
    summary.images = ingest_images(
        driver, records, str(path), batch_size=batch_size, progress=start_phase("images", len(records)),
        update=update,
    )
    if caption_split:
        summary.images.merge(
            ingest_images(
                driver, with_caption_split(records), str(path), attribute_source="caption",
                batch_size=batch_size, progress=start_phase("caption-split attributes", len(records)),
                update=update,
            )
        )
    wanted = [q for q in queries.queries
              if q.candidate_id in listed and (q.target_id is None or q.target_id in listed)]
    summary.skipped_queries = len(queries.queries) - len(wanted)
    summary.queries = ingest_queries(
        driver, wanted, str(split_file), batch_size=batch_size, progress=start_phase("queries", len(wanted)),
    )
    if retire:
        summary.retired = retire_images(driver, retire)
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
    from readers.fashioniq import caption_vocabulary, read_fashioniq_images, read_fashioniq_queries

    summary = LoadSummary()
    images = list(read_fashioniq_images(root, split, images_dir=images_dir))
    vocab = Vocabulary(caption_vocabulary(root))
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
