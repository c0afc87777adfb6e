"""Featurise graph nodes: (node id, image path) or (node id, text) -> feature rows, through the cache.

Pure: no Neo4j here; the caller reads ids and paths/texts from the graph (or from records) and writes
the results wherever it likes. Work goes in chunks: read + hash a chunk, look it up in the cache,
encode only the misses, store them, move on. A failure or an interrupt therefore loses at most the
chunk in flight, and a rerun recomputes nothing that was finished.

Bad inputs are skipped and reported (``FeatureResult.failed``: id, path or text, reason) by default;
``strict=True`` raises :class:`FeaturizationError` naming the first one (after storing the good
features of the chunk it was found in).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gnn.features.cache import FeatureCache, sha256_bytes, text_key
from gnn.features.encoders import ImageEncoder, TextEncoder
from readers.progress import StartPhase, no_progress


class Failure(NamedTuple):
    id: Hashable
    source: str  # the image path, or the text (shortened)
    reason: str


class FeaturizationError(RuntimeError):
    """Raised under ``strict=True``; ``failures`` lists every failure found so far."""

    def __init__(self, failures: list[Failure]) -> None:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"cannot featurise {first.id!r} ({first.source}): {first.reason}{more}")
        self.failures = failures


@dataclass
class FeatureResult:
    """Rows of ``features`` belong to ``ids`` (input order, failed items left out)."""

    model_name: str
    ids: list[Hashable]
    features: np.ndarray  # float32 [len(ids), dim]
    computed: int  # inputs that went through the network in this call
    cached: int  # inputs answered from the cache, or by an identical input earlier in this call
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)  # the content key (sha256) each row was computed from

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self) -> dict[Hashable, int]:
        return {node_id: i for i, node_id in enumerate(self.ids)}

    def summary(self) -> str:
        rate = self.computed / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.model_name}: {len(self.ids)} featurised ({self.computed} computed, {self.cached} cached), "
            f"{len(self.failed)} failed, {self.seconds:.1f} s ({rate:.1f} computed/s)"
        )


def _shorten(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


class _Run:
    """Bookkeeping shared by images and texts: rows, reuse of identical inputs, cache traffic."""

    def __init__(self, n: int, dim: int, cache: FeatureCache | None, model_name: str) -> None:
        if cache is not None and cache.dim != dim:
            raise ValueError(f"cache dim {cache.dim} != encoder dim {dim}")
        if cache is not None and cache.model_name != model_name:
            raise ValueError(f"cache is for {cache.model_name!r}, encoder is {model_name!r}")
        self.features = np.zeros((n, dim), dtype=np.float32)
        self.have = np.zeros(n, dtype=bool)
        self.cache = cache
        self.first_row: dict[str, int] = {}  # key -> row already filled in this call
        self.failed: dict[int, Failure] = {}
        self.keys: dict[int, str] = {}  # row -> its content key
        self.computed = 0
        self.cached = 0

    def resolve(self, idxs: list[int], keys: list[str]) -> tuple[list[int], list[str], dict[int, int]]:
        """Fill rows from earlier rows / the cache; -> (rows to compute, their keys, duplicate -> row)."""
        todo_rows: list[int] = []
        todo_keys: list[str] = []
        dup_of: dict[int, int] = {}
        pending: dict[str, int] = {}
        lookup_rows: list[int] = []
        lookup_keys: list[str] = []
        for i, k in zip(idxs, keys, strict=True):
            self.keys[i] = k
            if k in self.first_row:
                self.features[i] = self.features[self.first_row[k]]
                self.have[i] = True
                self.cached += 1
            elif k in pending:
                dup_of[i] = pending[k]
            else:
                pending[k] = i
                lookup_rows.append(i)
                lookup_keys.append(k)
        if self.cache is not None and lookup_keys:
            found, arr = self.cache.get_many(lookup_keys)
        else:
            found, arr = np.zeros(len(lookup_keys), dtype=bool), None
        for j, (i, k) in enumerate(zip(lookup_rows, lookup_keys, strict=True)):
            if found[j]:
                self.features[i] = arr[j]  # type: ignore[index]
                self.have[i] = True
                self.first_row[k] = i
                self.cached += 1
            else:
                todo_rows.append(i)
                todo_keys.append(k)
        # duplicates of a cache hit are hits too
        for d, i in list(dup_of.items()):
            if self.have[i]:
                self.features[d] = self.features[i]
                self.have[d] = True
                self.cached += 1
                del dup_of[d]
        return todo_rows, todo_keys, dup_of

    def store(self, rows: list[int], keys: list[str], feats: np.ndarray) -> None:
        if rows:
            self.features[rows] = feats
            self.have[rows] = True
            self.computed += len(rows)
            for i, k in zip(rows, keys, strict=True):
                self.first_row[k] = i
            if self.cache is not None:
                self.cache.put_many(keys, feats)  # atomic: this chunk is safe from here on

    def finish_duplicates(
        self, dup_of: dict[int, int], ids: list[Hashable], source_of: Callable[[int], str]
    ) -> None:
        """Rows whose input was identical to one computed in the same chunk share its fate."""
        for d, i in dup_of.items():
            if self.have[i]:
                self.features[d] = self.features[i]
                self.have[d] = True
                self.cached += 1
            elif i in self.failed:
                self.failed[d] = Failure(ids[d], source_of(d), self.failed[i].reason)

    def result(self, ids: list[Hashable], model_name: str, t0: float) -> FeatureResult:
        ok = np.flatnonzero(self.have)
        return FeatureResult(
            model_name=model_name,
            ids=[ids[i] for i in ok],
            features=np.ascontiguousarray(self.features[ok]),
            computed=self.computed,
            cached=self.cached,
            failed=[self.failed[i] for i in sorted(self.failed)],
            seconds=time.perf_counter() - t0,
            keys=[self.keys[i] for i in ok],
        )


_KEEP_BYTES = 2 << 20


def _read_image_bytes(path: object) -> bytes | str:
    """File bytes, or the reason they cannot be had."""
    if path is None or (isinstance(path, str) and not path.strip()):
        return "no image path"
    try:
        data = Path(path).read_bytes()  # type: ignore[arg-type]
    except FileNotFoundError:
        return "missing file"
    except IsADirectoryError:
        return "is a directory"
    except (OSError, TypeError) as e:
        return f"unreadable: {getattr(e, 'strerror', None) or e}"
    return data if data else "empty file"


def featurize_images(
    items: Sequence[tuple[Hashable, str | Path]],
    encoder: ImageEncoder,
    cache: FeatureCache | None = None,
    *,
    strict: bool = False,
    start_phase: StartPhase | None = None,
    chunk_size: int = 256,
    batch_size: int | None = None,
) -> FeatureResult:
    """Features for ``(node_id, image_path)`` items; bad images are reported in ``failed`` (or raise).

    Cache keys are the sha256 of the file bytes, so identical files are computed once.
    """
    t0 = time.perf_counter()
    items = list(items)
    ids = [node_id for node_id, _ in items]
    run = _Run(len(items), encoder.dim, cache, encoder.name)

    def source_of(i: int) -> str:
        return str(items[i][1])

    def fail(i: int, reason: str) -> None:
        run.failed[i] = Failure(ids[i], source_of(i), reason)

    advance = (start_phase or no_progress)(f"image features ({encoder.name})", len(items))
    for start in range(0, len(items), chunk_size):
        idxs, keys, data = [], [], {}
        for i in range(start, min(len(items), start + chunk_size)):
            got = _read_image_bytes(items[i][1])
            if isinstance(got, str):
                fail(i, got)
                continue
            idxs.append(i)
            keys.append(sha256_bytes(got))
            # keep small files in memory (decoded from these bytes: one read); re-read big ones so a
            # chunk of 20 MB photos does not hold gigabytes
            data[i] = got if len(got) <= _KEEP_BYTES else items[i][1]
        if strict and run.failed:
            raise FeaturizationError([run.failed[i] for i in sorted(run.failed)])
        rows, row_keys, dup_of = run.resolve(idxs, keys)
        advance(min(chunk_size, len(items) - start) - len(rows) - len(dup_of))
        res = encoder.try_encode_images([data[i] for i in rows], batch_size, on_batch=advance)
        ok_rows = [rows[j] for j in res.ok]
        run.store(ok_rows, [row_keys[j] for j in res.ok], res.features)
        for j, err in res.errors:
            fail(rows[j], err.reason)
        run.finish_duplicates(dup_of, ids, source_of)
        advance(len(dup_of))
        if strict and run.failed:
            raise FeaturizationError([run.failed[i] for i in sorted(run.failed)])
    return run.result(ids, encoder.name, t0)


def featurize_texts(
    items: Sequence[tuple[Hashable, str]],
    encoder: TextEncoder,
    cache: FeatureCache | None = None,
    *,
    strict: bool = False,
    start_phase: StartPhase | None = None,
    chunk_size: int = 512,
    batch_size: int | None = None,
) -> FeatureResult:
    """Features for ``(node_id, text)`` items. Non-strings and empty/blank texts are failures (a blank
    caption is a data bug, and its embedding would be noise). Keys: sha256 of the exact text."""
    t0 = time.perf_counter()
    items = list(items)
    ids = [node_id for node_id, _ in items]
    run = _Run(len(items), encoder.dim, cache, encoder.name)

    def source_of(i: int) -> str:
        return _shorten(str(items[i][1]))

    advance = (start_phase or no_progress)(f"text features ({encoder.name})", len(items))
    for start in range(0, len(items), chunk_size):
        idxs, keys = [], []
        for i in range(start, min(len(items), start + chunk_size)):
            text = items[i][1]
            if not isinstance(text, str):
                run.failed[i] = Failure(ids[i], source_of(i), f"not a string ({type(text).__name__})")
            elif not text.strip():
                run.failed[i] = Failure(ids[i], source_of(i), "empty text")
            else:
                idxs.append(i)
                keys.append(text_key(text))
        if strict and run.failed:
            raise FeaturizationError([run.failed[i] for i in sorted(run.failed)])
        rows, row_keys, dup_of = run.resolve(idxs, keys)
        if rows:
            feats = encoder.encode_texts([items[i][1] for i in rows], batch_size)
            run.store(rows, row_keys, feats)
        run.finish_duplicates(dup_of, ids, source_of)
        advance(min(chunk_size, len(items) - start))
    return run.result(ids, encoder.name, t0)


def cached_text_encoder(features_root: str | Path, text_encoder_name: str,
                        start_phase: StartPhase | None = None) -> Callable[[Sequence[str]], np.ndarray]:
    """A function from texts to their features, through the content-keyed cache under ``features_root``
    (rows in input order; the encoder is built on the first call). What model training uses to featurise
    generated captions: each distinct text is encoded once, ever."""
    from gnn.features.encoders import text_encoder

    made: list = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        if not made:
            made.append(text_encoder(text_encoder_name))
        encoder = made[0]
        result = featurize_texts(list(enumerate(texts)), encoder, FeatureCache(features_root, encoder.name, encoder.dim),
                                 start_phase=start_phase)
        if result.failed:
            raise FeaturizationError(result.failed)
        return result.features

    return encode
