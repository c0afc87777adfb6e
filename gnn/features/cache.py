"""On-disk feature cache keyed by (model name, content hash of the input).

A rerun, or a catalog with a few new products, costs only the new work: features are looked up by the
sha256 of the image *bytes* (or of the UTF-8 text), so renamed or moved files still hit, an edited file
misses, and byte-identical images (myntra-small has 106 sets) are computed once.

Layout, one folder per model (``<root>/<model name>/``)::

    meta.json                           {"model_name", "dim", "format"}
    shard-<time_ns>-<random>.npy        structured array [("key", "S64"), ("vec", "<f4", (dim,))]

Why this shape:
- **Append-only, atomic shards.** Each ``put_many`` writes one new shard to a temp file, fsyncs it and
  ``os.replace``-s it into place, so a crash or a failed featurisation never corrupts or loses what was
  already cached: a shard is either wholly there or not at all. Key and vector live in the same file,
  so one rename commits both. Writers in several processes never clash (unique shard names).
- **Fast lookup at ~100k entries.** On open, the key column of every shard is read into a dict
  key -> (shard, row) (~0.1 s for 100k keys); vectors stay memory-mapped and only requested rows are
  read. 100k EfficientNet features are ~0.5 GB on disk, little of it in RAM.
- **Bounded shard count.** When more than ``max_shards`` shards exist, the small ones are merged into
  one (the largest is left alone, so the cost stays proportional to recent writes); ``compact()`` merges
  everything. The merged shard is committed before the old ones are removed; a reader that already
  mapped a removed shard keeps reading it (POSIX), and a duplicate key across shards is harmless
  (the first one wins; both hold the same vector).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from readers.files import atomic_write

FORMAT_VERSION = 1
KEY_LEN = 64  # a sha256 hex digest
_SHARD_GLOB = "shard-*.npy"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def text_key(text: str) -> str:
    """Cache key of a text: sha256 of its UTF-8 bytes (the text exactly as encoded, no normalisation)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_key(path: str | os.PathLike) -> str:
    """Cache key of a file: sha256 of its bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_dirname(model_name: str) -> str:
    """A model name as one path component ("sentence-transformers/x" -> "sentence-transformers__x")."""
    name = re.sub(r"[^A-Za-z0-9._+@-]", "_", model_name.replace("/", "__")).strip(".")
    if not name:
        raise ValueError(f"model name {model_name!r} gives an empty directory name")
    return name


def _encode_key(key: str | bytes) -> bytes:
    k = key.encode("ascii") if isinstance(key, str) else bytes(key)
    if not k or len(k) > KEY_LEN or b"\0" in k:
        raise ValueError(f"cache keys are non-empty ASCII strings of at most {KEY_LEN} chars, got {key!r}")
    return k


class FeatureCache:
    """Feature vectors of one model, keyed by content hash (hex strings, e.g. :func:`file_key`).

    Thread-safe within a process (one lock); safe for several processes appending at once (each sees
    the others' shards after :meth:`refresh`).
    """

    def __init__(self, root: str | os.PathLike, model_name: str, dim: int, *, max_shards: int = 64) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.root = Path(root)
        self.model_name = model_name
        self.dim = int(dim)
        self.max_shards = max_shards
        self.dir = self.root / safe_dirname(model_name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._dtype = np.dtype([("key", f"S{KEY_LEN}"), ("vec", "<f4", (self.dim,))])
        self._lock = threading.RLock()
        self._check_meta()
        self._shards: list[np.ndarray] = []  # memory-mapped structured arrays
        self._paths: list[Path] = []
        self._index: dict[bytes, tuple[int, int]] = {}
        self.refresh()

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.dir)!r}, dim={self.dim}, entries={len(self)}, shards={len(self._paths)})"
        )

    # ---- metadata -------------------------------------------------------------------------------
    def _check_meta(self) -> None:
        meta_path = self.dir / "meta.json"
        meta = {"model_name": self.model_name, "dim": self.dim, "format": FORMAT_VERSION}
        if meta_path.exists():
            found = json.loads(meta_path.read_text())
            if found.get("dim") != self.dim or found.get("format") != FORMAT_VERSION:
                raise ValueError(
                    f"feature cache {self.dir} holds dim={found.get('dim')} format={found.get('format')}, "
                    f"asked for dim={self.dim} format={FORMAT_VERSION}: use another root or model name"
                )
            return
        atomic_write(meta_path, json.dumps(meta, indent=1))

    # ---- reading --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """(Re)scan the folder: picks up shards written by other processes."""
        with self._lock:
            known = set(self._paths)
            for path in sorted(self.dir.glob(_SHARD_GLOB)):
                if path in known:
                    continue
                try:
                    arr = np.load(path, mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError) as e:  # removed by a concurrent compaction, or foreign file
                    if path.exists():
                        warnings.warn(f"feature cache: skipping unreadable shard {path}: {e}", stacklevel=2)
                    continue
                if arr.dtype != self._dtype or arr.ndim != 1:
                    warnings.warn(
                        f"feature cache: skipping shard {path} with dtype {arr.dtype}", stacklevel=2
                    )
                    continue
                self._add_shard(path, arr)

    def _add_shard(self, path: Path, arr: np.ndarray) -> None:
        sid = len(self._shards)
        self._shards.append(arr)
        self._paths.append(path)
        index = self._index
        for row, k in enumerate(np.asarray(arr["key"]).tolist()):
            index.setdefault(k, (sid, row))  # first wins; duplicates hold the same vector

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str | bytes):
            return False
        try:
            return _encode_key(key) in self._index
        except ValueError:
            return False

    @property
    def num_shards(self) -> int:
        return len(self._paths)

    def keys(self) -> list[str]:
        with self._lock:
            return [k.decode("ascii") for k in self._index]

    def get_many(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> ``(found_mask bool [n], features float32 [n, dim])``; rows of missing keys are zeros."""
        n = len(keys)
        found = np.zeros(n, dtype=bool)
        out = np.zeros((n, self.dim), dtype=np.float32)
        with self._lock:
            by_shard: dict[int, tuple[list[int], list[int]]] = {}
            index = self._index
            for i, key in enumerate(keys):
                hit = index.get(_encode_key(key))
                if hit is not None:
                    found[i] = True
                    pos, rows = by_shard.setdefault(hit[0], ([], []))
                    pos.append(i)
                    rows.append(hit[1])
            for sid, (pos, rows) in by_shard.items():
                # one vectorised gather per shard; sorted rows read the memory map front to back
                rows_arr = np.asarray(rows, dtype=np.int64)
                order = np.argsort(rows_arr, kind="stable")
                out[np.asarray(pos)[order]] = self._shards[sid]["vec"][rows_arr[order]]
        return found, out

    def get(self, key: str) -> np.ndarray | None:
        found, arr = self.get_many([key])
        return arr[0] if found[0] else None

    # ---- writing --------------------------------------------------------------------------------
    def put_many(self, keys: Sequence[str], features: np.ndarray) -> int:
        """Store features for keys not yet cached (one new shard, written atomically). -> number added."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim or len(keys) != len(features):
            raise ValueError(
                f"expected {len(keys)} x {self.dim} features, got {features.shape} for {len(keys)} keys"
            )
        if not np.isfinite(features).all():
            raise ValueError("refusing to cache non-finite features")
        with self._lock:
            seen: set[bytes] = set()
            rows: list[int] = []
            enc: list[bytes] = []
            for i, key in enumerate(keys):
                k = _encode_key(key)
                if k in self._index or k in seen:
                    continue
                seen.add(k)
                rows.append(i)
                enc.append(k)
            if not rows:
                return 0
            arr = np.empty(len(rows), dtype=self._dtype)
            arr["key"] = enc
            arr["vec"] = features[rows]
            path = self._write_shard(arr)
            self._add_shard(path, np.load(path, mmap_mode="r", allow_pickle=False))
            if len(self._paths) > self.max_shards:
                self._merge(keep_largest=True)
            return len(rows)

    def _write_shard(self, arr: np.ndarray) -> Path:
        path = self.dir / f"shard-{time.time_ns():020d}-{secrets.token_hex(4)}.npy"
        atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))
        return path

    def compact(self) -> None:
        """Merge all shards into one (and drop temp files that crashed writers left behind)."""
        with self._lock:
            self.refresh()
            if len(self._paths) > 1:
                self._merge(keep_largest=False)
            cutoff = time.time() - 3600  # an hour-old temp file has no live writer
            for tmp in self.dir.glob(".tmp-*"):
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()
                except OSError:
                    pass

    def _merge(self, keep_largest: bool) -> None:
        sizes = [len(a) for a in self._shards]
        ids = list(range(len(self._shards)))
        if keep_largest:
            ids.remove(int(np.argmax(sizes)))
        if len(ids) < 2:
            return
        old = [self._paths[i] for i in ids]
        # Only rows the index points at: drops duplicates that several writers produced.
        wanted: dict[int, list[int]] = {i: [] for i in ids}
        for sid, row in self._index.values():
            if sid in wanted:
                wanted[sid].append(row)
        parts = [
            np.asarray(self._shards[i][np.sort(np.asarray(r, dtype=np.int64))]) for i, r in wanted.items()
        ]
        merged = np.concatenate(parts) if parts else np.empty(0, dtype=self._dtype)
        if len(merged):
            self._write_shard(merged)  # committed before anything is removed
        for p in old:
            p.unlink(missing_ok=True)
        # Rebuild the index from what is on disk now.
        self._shards, self._paths, self._index = [], [], {}
        self.refresh()

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self._paths if p.exists())


class TextFeatures:
    """Text features from memory, then the on-disk feature cache, then the encoder, which is built only
    on the first miss (an interaction usually needs no new text, so it never loads the model). New
    features are written to the cache, so the next process finds them. Quacks like a text encoder."""

    def __init__(self, cache: FeatureCache, make_encoder: Callable[[], object]):
        self.cache = cache
        self.dim = cache.dim
        self.name = cache.model_name
        self._make_encoder = make_encoder
        self._encoder = None
        self._encoder_lock = threading.Lock()  # a server encodes from several threads: build the model once
        self.memory: dict[str, np.ndarray] = {}

    def load_encoder(self) -> None:
        """Build the encoder now (a server does it before its first request rather than during it)."""
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = self._make_encoder()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        missing = sorted({t for t in texts if t not in self.memory})
        if missing:
            found, features = self.cache.get_many([text_key(t) for t in missing])
            for text, ok, vec in zip(missing, found, features, strict=True):
                if ok:
                    self.memory[text] = vec
            unknown = [t for t, ok in zip(missing, found, strict=True) if not ok]
            if unknown:
                with self._encoder_lock:
                    if self._encoder is None:
                        self._encoder = self._make_encoder()
                    new = np.asarray(self._encoder.encode_texts(unknown), dtype=np.float32)
                self.cache.put_many([text_key(t) for t in unknown], new)
                self.memory.update(zip(unknown, new, strict=True))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.memory[t] for t in texts])
