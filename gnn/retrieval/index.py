"""A FAISS index of image embeddings with its id map, saved atomically, updated in place.

Three kinds (``RetrievalConfig.index``, saved with the index):

- ``flat``: exact inner-product search, every vector compared (the reference the others are measured
  against; at a million products a query reads 512 MB of vectors);
- ``ivf``: vectors bucketed by a k-means coarse quantizer (``ivf_lists`` lists), a query scans the
  ``ivf_probe`` nearest lists;
- ``hnsw``: a navigable small-world graph (``hnsw_m`` links a node, ``hnsw_ef_search`` candidates a query).

What interactions and the live catalog need, for every kind:

- **replace** a vector (a like or tag moved an image's embedding): flat overwrites the stored vector in
  place; IVF removes it and adds it again, so it lands in the list of its new nearest centroid; HNSW
  inserts it again as a new node (linked where it now belongs) and marks the old node stale;
- **add** new images (appended);
- **remove** images (a product leaves the catalog): IVF removes them; flat and HNSW mark them stale.

Stale nodes are skipped inside the search (a FAISS ``IDSelector``), so they cost no results; they take
memory until the index is built anew (every full sync and publish builds it anew).

Each stored vector has a FAISS id (``fid``); for flat and IVF it is the image's row, for HNSW a new one
each time a vector is inserted again. ``shards > 1`` splits the vectors over that many FAISS indexes of the
kind (by fid), each searched and their results merged by score: the layout a deployment spreads over
machines (``faiss.IndexShards`` does the same merge in one process, but does not pass the stale filter
on to its shards), testable here in one process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from readers.files import atomic_write, atomic_write_json

KINDS = ("auto", "flat", "ivf", "hnsw")
# "auto": exact search while a flat scan is cheap, IVF from this many images on (measured on this
# machine: a flat scan of 100k vectors takes 3.3 ms a query (p50), of a million 23 ms; IVF 0.34 ms at
# recall@10 0.999 against exact, docs/scale.md).
AUTO_IVF_FROM = 200_000


@dataclass(frozen=True)
class IndexSpec:
    """What kind of index, with its settings (from :class:`gnn.config.RetrievalConfig`)."""

    kind: str = "auto"
    ivf_lists: int | None = None
    ivf_probe: int = 32
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96
    shards: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r} (choose {' | '.join(KINDS)})")
        if self.shards < 1:
            raise ValueError(f"shards must be 1 or more, not {self.shards}")

    @classmethod
    def of(cls, config: Any, size: int | None = None) -> IndexSpec:
        """From a RetrievalConfig (or anything with its field names; None: the defaults); with ``size``,
        "auto" resolved for an index of that many images."""
        if config is None:
            spec = cls()
        elif isinstance(config, IndexSpec):
            spec = config
        else:
            values = {f.name: getattr(config, f.name) for f in fields(cls) if f.name != "kind" and hasattr(config, f.name)}
            spec = cls(kind=getattr(config, "index", "auto"), **values)
        return spec if size is None else spec.for_size(size)

    def for_size(self, size: int) -> IndexSpec:
        """This spec with "auto" made a kind: flat below :data:`AUTO_IVF_FROM` images, IVF from there on."""
        if self.kind != "auto":
            return self
        return replace(self, kind="ivf" if size >= AUTO_IVF_FROM else "flat")

    def lists_for(self, n: int) -> int:
        """IVF lists for ``n`` vectors: the setting, else about 4 * sqrt(n); never more than n / 39 (the
        fewest training points a list needs)."""
        lists = self.ivf_lists or int(4 * math.sqrt(max(n, 1)))
        return max(1, min(lists, n // 39 if n >= 39 else 1))


# A few queries search on one thread: FAISS's OpenMP threads help a batch, but for one query on a busy
# machine their start and spin-wait cost more than the search (measured: HNSW over 10k vectors, p50
# 27.6 ms on 2 threads against 0.19 ms on one, with the machine's cores taken by other work).
SINGLE_THREAD_QUERIES = 8


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _id_array(ids: np.ndarray) -> tuple[faiss.IDSelectorArray, np.ndarray]:
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)), ids  # the array must outlive the selector


class ImageIndex:
    """Inner-product search over L2-normalised embeddings (= cosine), keyed by image id."""

    def __init__(self, dim: int, spec: IndexSpec | Any = None, size: int = 0):
        """``size``: how many images it will hold, which "auto" chooses the kind by."""
        self.dim = dim
        self.spec = IndexSpec.of(spec, size)
        self.ids: list[str] = []  # row -> image id
        self.row_of: dict[str, int] = {}  # image id -> row (images removed are not in it)
        self.fid_row: list[int] = []  # fid -> row
        self.row_fid: list[int] = []  # row -> its current fid
        self.stale: set[int] = set()  # fids searches skip (removed images; HNSW's replaced vectors)
        self.version = ""
        self.shards: list[faiss.Index] = []
        if self.spec.kind != "ivf":  # IVF is made when the first vectors arrive (its quantizer trains on them)
            self.shards = [self._new_shard(None) for _ in range(self.spec.shards)]
        self._selector: tuple[Any, Any] | None = None

    # --- construction -----------------------------------------------------------------------------
    def _new_shard(self, train: np.ndarray | None) -> faiss.Index:
        spec = self.spec
        if spec.kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if spec.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = spec.hnsw_ef_construction
            inner.hnsw.efSearch = spec.hnsw_ef_search
            return faiss.IndexIDMap2(inner)
        lists = spec.lists_for(0 if train is None else len(train))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, lists, faiss.METRIC_INNER_PRODUCT)
        ivf.own_fields = True  # the IVF index frees its quantizer
        quantizer.this.disown()
        if train is not None and len(train):
            sample = train
            if len(train) > 40 * lists:  # k-means on a seeded sample: enough points per list
                sample = train[np.random.default_rng(0).choice(len(train), 40 * lists, replace=False)]
            ivf.train(np.ascontiguousarray(sample))
        ivf.nprobe = min(spec.ivf_probe, lists)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # removal and reconstruction by id
        return ivf

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.row_of

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def ntotal(self) -> int:
        """Vectors the FAISS shards hold (stale ones included)."""
        return sum(s.ntotal for s in self.shards)

    @staticmethod
    def _normalise(vectors: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.maximum(norms, 1e-12)

    # --- updates ----------------------------------------------------------------------------------
    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Add new ids, or replace the vectors of ids already present."""
        vectors = self._normalise(vectors)
        if not self.shards:  # IVF: train the quantizer on the first vectors
            self.shards = [self._new_shard(vectors) for _ in range(self.spec.shards)]
        fresh, fresh_vecs, moved, moved_vecs = [], [], [], []
        for node_id, vec in zip(ids, vectors, strict=True):
            row = self.row_of.get(node_id)
            if row is None:
                row = len(self.ids)
                self.ids.append(node_id)
                self.row_of[node_id] = row
                self.row_fid.append(-1)
                fresh.append(row), fresh_vecs.append(vec)
            else:
                moved.append(row), moved_vecs.append(vec)
        if moved:
            self._replace(np.asarray(moved, dtype=np.int64), np.stack(moved_vecs))
        if fresh:
            self._insert(np.asarray(fresh, dtype=np.int64), np.stack(fresh_vecs))

    def _insert(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """New stored vectors for ``rows`` (each gets the next fid; flat and IVF fids equal rows)."""
        fids = np.arange(len(self.fid_row), len(self.fid_row) + len(rows), dtype=np.int64)
        self.fid_row.extend(rows.tolist())
        for row, fid in zip(rows.tolist(), fids.tolist(), strict=True):
            self.row_fid[row] = fid
        S = len(self.shards)
        for s, shard in enumerate(self.shards):
            mine = fids % S == s
            if mine.any():
                shard.add_with_ids(np.ascontiguousarray(vectors[mine]), fids[mine])

    def _replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        fids = np.asarray([self.row_fid[r] for r in rows], dtype=np.int64)
        S = len(self.shards)
        if self.spec.kind == "hnsw":  # inserted again where it now belongs; the old node goes stale
            self.stale.update(fids.tolist())
            self._selector = None
            self._insert(rows, vectors)
            return
        for s, shard in enumerate(self.shards):
            mine = fids % S == s
            if not mine.any():
                continue
            if self.spec.kind == "ivf":
                selector, _keep = _id_array(fids[mine])
                shard.remove_ids(selector)
                shard.add_with_ids(np.ascontiguousarray(vectors[mine]), fids[mine])
            else:  # flat: overwrite in place (a shard holds fids s, s + S, ... in order)
                flat = faiss.downcast_index(shard.index)
                stored = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim)
                stored[fids[mine] // S] = vectors[mine]

    def remove(self, ids: list[str]) -> int:
        """Take images out of search; returns how many were present."""
        rows = [self.row_of.pop(i) for i in ids if i in self.row_of]
        if not rows:
            return 0
        fids = np.asarray([self.row_fid[r] for r in rows], dtype=np.int64)
        if self.spec.kind == "ivf":
            for s, shard in enumerate(self.shards):
                mine = fids % len(self.shards) == s
                if mine.any():
                    selector, _keep = _id_array(fids[mine])
                    shard.remove_ids(selector)
        else:
            self.stale.update(fids.tolist())
            self._selector = None
        return len(rows)

    # --- search -----------------------------------------------------------------------------------
    def _params(self) -> Any:
        if not self.stale:
            return None
        if self._selector is None:
            batch = faiss.IDSelectorBatch(np.asarray(sorted(self.stale), dtype=np.int64))
            skip = faiss.IDSelectorNot(batch)
            params = (faiss.SearchParametersHNSW(sel=skip, efSearch=self.spec.hnsw_ef_search)
                      if self.spec.kind == "hnsw" else faiss.SearchParameters(sel=skip))
            self._selector = (params, (batch, skip))  # the selectors must outlive the parameters
        return self._selector[0]

    def search(
        self, queries: np.ndarray, k: int, exclude: list[str | None] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top-k (id, cosine) per query; ``exclude[i]`` (the candidate) is left out of row i."""
        want = min(k + (1 if exclude else 0), len(self))
        if want <= 0:
            return [[] for _ in range(len(queries))]
        q = self._normalise(queries)
        params = self._params()
        with _threads(1 if len(q) <= SINGLE_THREAD_QUERIES else None):
            parts = [shard.search(q, want, params=params) for shard in self.shards if shard.ntotal]
        scores = np.concatenate([p[0] for p in parts], axis=1)
        fids = np.concatenate([p[1] for p in parts], axis=1)
        if len(parts) > 1:  # merge the shards' answers by score, as faiss.IndexShards does
            order = np.argsort(-scores, axis=1, kind="stable")[:, :want]
            scores, fids = np.take_along_axis(scores, order, 1), np.take_along_axis(fids, order, 1)
        out = []
        for i in range(len(fids)):
            skip = exclude[i] if exclude else None
            hits = []
            for f, s in zip(fids[i].tolist(), scores[i].tolist(), strict=True):
                if f < 0:
                    continue
                image = self.ids[self.fid_row[f]]
                if image != skip:
                    hits.append((image, float(s)))
            out.append(hits[:k])
        return out

    def copy(self) -> ImageIndex:
        """An independent copy (a full refresh changes the copy while searches read the original)."""
        out = ImageIndex.__new__(ImageIndex)
        out.dim, out.spec, out.version = self.dim, self.spec, self.version
        out.shards = [faiss.clone_index(s) for s in self.shards]
        out.ids, out.row_of = list(self.ids), dict(self.row_of)
        out.fid_row, out.row_fid, out.stale = list(self.fid_row), list(self.row_fid), set(self.stale)
        out._selector = None
        return out

    def vector(self, node_id: str) -> np.ndarray:
        fid = self.row_fid[self.row_of[node_id]]
        return self.shards[fid % len(self.shards)].reconstruct(fid)

    # --- files ------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """``path`` (.faiss) and ``path``.ids.json, each written whole or not at all. Two files can still
        disagree after a crash between them; the published engine keeps both in one generation folder
        with their checksums (:mod:`engine.published`), which is what makes the pair atomic."""
        blobs = [faiss.serialize_index(s) for s in self.shards]
        if len(blobs) == 1:
            atomic_write(path, blobs[0].tobytes())
        else:  # several shards (or an IVF index with no vectors yet): one npz of serialised indexes
            atomic_write(path, lambda fh: np.savez(fh, *blobs))
        identity = all(f == r for f, r in enumerate(self.fid_row)) and len(self.fid_row) == len(self.ids)
        meta = {"dim": self.dim, "ids": self.ids, "version": self.version, "spec": asdict(self.spec),
                "removed": sorted(set(range(len(self.ids))) - set(self.row_of.values())),
                "stale": sorted(self.stale), "fid_row": None if identity else self.fid_row}
        atomic_write_json(path.with_suffix(".ids.json"), meta, indent=None, sort_keys=False)

    @classmethod
    def load(cls, path: Path) -> ImageIndex:
        meta = json.loads(path.with_suffix(".ids.json").read_text())
        index = cls.__new__(cls)
        index.dim, index.spec, index.version = meta["dim"], IndexSpec(**meta.get("spec", {})).for_size(len(meta["ids"])), meta.get("version", "")
        index.ids = meta["ids"]
        removed = set(meta.get("removed", []))
        index.row_of = {node_id: i for i, node_id in enumerate(index.ids) if i not in removed}
        index.fid_row = meta.get("fid_row") or list(range(len(index.ids)))
        index.row_fid = [-1] * len(index.ids)
        for fid, row in enumerate(index.fid_row):
            index.row_fid[row] = fid  # a row's current vector is its last fid
        index.stale = set(meta.get("stale", []))
        index._selector = None
        if index.spec.shards == 1 and not (index.spec.kind == "ivf" and not index.ids):
            index.shards = [faiss.read_index(str(path))]
        else:
            with np.load(path) as blob:
                index.shards = [faiss.deserialize_index(blob[k]) for k in sorted(blob.files, key=lambda k: int(k[4:]))]
        for shard in index.shards:
            if index.spec.kind == "ivf" and shard.direct_map.type != faiss.DirectMap.Hashtable:
                shard.set_direct_map_type(faiss.DirectMap.Hashtable)
        held = index.ntotal - (len(index.stale) if index.spec.kind != "ivf" else 0)
        if held != len(index.row_of):
            raise ValueError(f"{path}: {held} vectors in search but {len(index.row_of)} ids")
        return index
