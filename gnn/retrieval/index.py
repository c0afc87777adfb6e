"""A FAISS index of image embeddings with its id map, saved atomically, updated in place."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

from readers.files import atomic_write, atomic_write_json


class ImageIndex:
    """Inner-product search over L2-normalised embeddings (= cosine), keyed by image id.

    ``IndexIDMap2`` over a flat index supports exact search, in-place replacement of single vectors
    (interactions) and removal (retired products); at millions of products swap the inner index for
    IVF/HNSW. FAISS ids are positions in :attr:`ids`; a removed id leaves ``None`` at its position (FAISS
    never returns it again), and re-adding it later gives it a new position.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.ids: list[str | None] = []
        self.row_of: dict[str, int] = {}
        self.version = ""

    def __len__(self) -> int:
        return self.index.ntotal

    @staticmethod
    def _normalise(vectors: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.maximum(norms, 1e-12)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Add new ids, or replace the vectors of ids already present."""
        vectors = self._normalise(vectors)
        new_rows, new_vecs, old_rows, old_vecs = [], [], [], []
        for node_id, vec in zip(ids, vectors, strict=True):
            row = self.row_of.get(node_id)
            if row is None:
                row = len(self.ids)
                self.ids.append(node_id)
                self.row_of[node_id] = row
                new_rows.append(row), new_vecs.append(vec)
            else:
                old_rows.append(row), old_vecs.append(vec)
        if old_rows:
            rows = np.asarray(old_rows, dtype=np.int64)
            self.index.remove_ids(rows)
            self.index.add_with_ids(np.stack(old_vecs), rows)
        if new_rows:
            self.index.add_with_ids(np.stack(new_vecs), np.asarray(new_rows, dtype=np.int64))

    def remove(self, ids: list[str]) -> int:
        """Take ``ids`` out of the index (ids it does not hold are ignored); returns how many went."""
        rows = [self.row_of.pop(node_id) for node_id in dict.fromkeys(ids) if node_id in self.row_of]
        if rows:
            self.index.remove_ids(np.asarray(rows, dtype=np.int64))
            for row in rows:
                self.ids[row] = None
        return len(rows)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.row_of

    def search(
        self, queries: np.ndarray, k: int, exclude: list[str | None] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top-k (id, cosine) per query; ``exclude[i]`` (the candidate) is left out of row i."""
        extra = 1 if exclude else 0
        scores, rows = self.index.search(self._normalise(queries), min(k + extra, len(self)))
        out = []
        for i in range(len(rows)):
            skip = exclude[i] if exclude else None
            hits = [
                (self.ids[r], float(s))
                for r, s in zip(rows[i], scores[i], strict=True)
                if r >= 0 and self.ids[r] != skip
            ]
            out.append(hits[:k])
        return out

    def copy(self) -> ImageIndex:
        """An independent copy (a refresh changes the copy while searches read the original)."""
        out = ImageIndex(self.dim)
        out.index = faiss.clone_index(self.index)
        out.ids = list(self.ids)
        out.row_of = dict(self.row_of)
        out.version = self.version
        return out

    def vector(self, node_id: str) -> np.ndarray:
        return self.index.reconstruct(self.row_of[node_id])

    def save(self, path: Path) -> None:
        """``path`` (.faiss) and ``path``.ids.json, each written whole or not at all. Two files can still
        disagree after a crash between them; the published engine keeps both in one generation folder
        with their checksums (:mod:`engine.published`), which is what makes the pair atomic."""
        atomic_write(path, faiss.serialize_index(self.index).tobytes())
        atomic_write_json(path.with_suffix(".ids.json"), {"dim": self.dim, "ids": self.ids, "version": self.version},
                          indent=None, sort_keys=False)

    @classmethod
    def load(cls, path: Path) -> ImageIndex:
        meta = json.loads(path.with_suffix(".ids.json").read_text())
        index = cls(meta["dim"])
        index.index = faiss.read_index(str(path))
        index.ids = meta["ids"]
        index.row_of = {node_id: i for i, node_id in enumerate(index.ids) if node_id is not None}
        index.version = meta.get("version", "")
        if index.index.ntotal != len(index.row_of):
            raise ValueError(f"{path}: {index.index.ntotal} vectors but {len(index.row_of)} ids")
        return index
