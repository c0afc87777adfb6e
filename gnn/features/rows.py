"""Node features as rows of a small table, so a million nodes need not hold a million feature vectors.

Row ``i`` is ``(1 - weight[i]) * table[first[i]] + weight[i] * table[second[i]]``. Two uses:

- captions: a catalog's composed queries use a few thousand distinct texts ("replace red with blue"), so
  a million captions are a few thousand text features and a row number each;
- generated catalogs (``benchmarks/scale``): each product reuses a real image feature of the product it
  copies, mixed with another of the same kind, so featurising is not what a benchmark measures.

A :class:`FeatureRows` stands where a dense ``[n, d]`` tensor does in :class:`~gnn.data.graph.GraphTensors`:
indexing gives dense rows, and :func:`project` applies a linear layer exactly without building the dense
matrix (a linear layer of a mix is the mix of the linear layer's outputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


class FeatureRows:
    """``[n, d]`` features as mixes of rows of a ``[m, d]`` table (see the module docstring)."""

    def __init__(self, table: np.ndarray | Tensor, first: np.ndarray | Tensor,
                 second: np.ndarray | Tensor | None = None, weight: np.ndarray | Tensor | None = None):
        self.table = torch.as_tensor(np.ascontiguousarray(table) if isinstance(table, np.ndarray) else table,
                                     dtype=torch.float32)
        self.first = torch.as_tensor(first, dtype=torch.long)
        self.second = self.first if second is None else torch.as_tensor(second, dtype=torch.long)
        self.weight = (torch.zeros(len(self.first)) if weight is None
                       else torch.as_tensor(weight, dtype=torch.float32))
        if not (len(self.first) == len(self.second) == len(self.weight)):
            raise ValueError("first, second and weight need one value per row")
        if len(self.first) and (int(self.first.max()) >= len(self.table) or int(self.second.max()) >= len(self.table)):
            raise ValueError(f"a row points past the table's {len(self.table)} rows")

    @classmethod
    def of_texts(cls, texts: Sequence[str], encode) -> FeatureRows:
        """One row per text, the table holding each distinct text once (``encode(texts) -> [k, d]``)."""
        distinct = list(dict.fromkeys(texts))
        at = {t: i for i, t in enumerate(distinct)}
        table = np.asarray(encode(distinct), dtype=np.float32)
        return cls(table.reshape(len(distinct), -1), np.fromiter((at[t] for t in texts), np.int64, len(texts)))

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.first), self.table.shape[1]))

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, rows) -> Tensor:
        """Dense rows (``rows``: an int, a slice, a list or a tensor of row numbers)."""
        a, b, w = self.first[rows], self.second[rows], self.weight[rows]
        if a.dim() == 0:
            return torch.lerp(self.table[a], self.table[b], w)
        return torch.lerp(self.table[a], self.table[b], w[:, None])

    def subset(self, rows: Tensor | Sequence[int]) -> FeatureRows:
        """The same table, only ``rows`` (no dense copy)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return FeatureRows(self.table, self.first[rows], self.second[rows], self.weight[rows])

    def dense(self) -> Tensor:
        return self[:]

    def checksum(self) -> float:
        """The sum of every entry (as ``dense().double().sum()``, without the dense matrix)."""
        sums = self.table.double().sum(dim=1)
        w = self.weight.double()
        return float(((1 - w) * sums[self.first] + w * sums[self.second]).sum())

    def project(self, linear: nn.Module) -> Tensor:
        """``linear(self.dense())`` for a linear layer, computed on the table when that is smaller."""
        if len(self.first) <= len(self.table):
            return linear(self.dense())
        projected = linear(self.table)
        a, b = projected[self.first], projected[self.second]
        return torch.lerp(a, b, self.weight[:, None])

    def with_rows(self, rows: Sequence[int], vectors: np.ndarray) -> FeatureRows:
        """A copy where ``rows`` hold ``vectors`` exactly (row numbers past the end are appended in order)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rows), self.dim)
        table = torch.cat([self.table, torch.from_numpy(vectors)])
        first, second, weight = self.first.clone(), self.second.clone(), self.weight.clone()
        n = len(first)
        extra = [r for r in rows if r >= n]
        if sorted(extra) != list(range(n, n + len(extra))):
            raise ValueError("appended rows must follow the last row in order")
        if extra:
            pad = torch.zeros(len(extra), dtype=torch.long)
            first, second = torch.cat([first, pad]), torch.cat([second, pad])
            weight = torch.cat([weight, torch.zeros(len(extra))])
        at = torch.arange(len(self.table), len(self.table) + len(rows))
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        first[idx], second[idx], weight[idx] = at, at, 0.0
        return FeatureRows(table, first, second, weight)

    def arrays(self) -> dict[str, np.ndarray]:
        """For saving: ``table``, ``first``, ``second`` and ``weight`` as numpy arrays."""
        return {"table": self.table.numpy(), "first": self.first.numpy().astype(np.int32),
                "second": self.second.numpy().astype(np.int32), "weight": self.weight.numpy()}

    @classmethod
    def from_arrays(cls, blob) -> FeatureRows:
        return cls(blob["table"], blob["first"].astype(np.int64), blob["second"].astype(np.int64), blob["weight"])


Features = Tensor | FeatureRows


def project(linear: nn.Module, features: Features) -> Tensor:
    """A linear layer over dense features or :class:`FeatureRows` alike."""
    if isinstance(features, FeatureRows):
        return features.project(linear)
    return linear(features)


def feature_checksum(features: Features) -> float:
    """The sum of every feature entry (part of a checkpoint's data fingerprint)."""
    if isinstance(features, FeatureRows):
        return features.checksum()
    return float(features.double().sum())
