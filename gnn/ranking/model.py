"""The second stage's ranker: a linear model over the columns of :func:`gnn.ranking.facts.list_features`.

Linear on purpose: a result's score is the sum of its facts' contributions (weight times value), so the
reasons shown for a result are exactly what ordered it. Contributions are given against the list's
average, so they sum to how far a result's score stands above or below the others'. When no fact
separates the results (no attribute facts at all, or none the query touches), the ranker keeps stage
one's order: it never does worse than the embedding ranking for want of facts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnn.config import RankerConfig
from gnn.ranking.facts import (
    EMBEDDING,
    GROUPS,
    FactTable,
    ListFeatures,
    QueryFacts,
    feature_names,
    list_features,
)
from readers.files import atomic_write_json

FORMAT = "tailor.ranker/1"
# Columns that are not facts: where only these differ between results, stage one's order stands.
# "meets_all_looks" is image similarity within the products that pass the filter, "facet_rank" the look's
# order within each level of "facet_jaccard": they separate results by facts only where those columns do.
_EMBEDDING_COLUMNS = frozenset({"embedding_score", "embedding_rank", "image_similarity", "look_rank",
                                "meets_all_looks", "facet_rank"})


@dataclass
class Ranking:
    """A re-ordered result list: ``order`` indexes stage one's list, best first."""

    order: np.ndarray
    scores: np.ndarray  # the ranker's score of every item of stage one's list
    features: ListFeatures
    reranked: bool  # False: no fact separated the results and stage one's order was kept


@dataclass
class LinearRanker:
    """Weights over named feature columns (raw scale: ``score = features @ weights``)."""

    config: RankerConfig
    names: list[str]
    kinds: list[str]
    weights: np.ndarray  # [len(names)] float32
    meta: dict[str, Any] = field(default_factory=dict)  # training history, data, version

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, np.float32)
        if self.weights.shape != (len(self.names),):
            raise ValueError(f"{len(self.weights)} weights for {len(self.names)} features")
        self.fact_columns = np.array([n not in _EMBEDDING_COLUMNS for n in self.names])

    @classmethod
    def for_kinds(cls, config: RankerConfig, kinds: list[str], weights: np.ndarray | None = None) -> LinearRanker:
        """A ranker with the columns ``config`` asks for (zero weights unless given)."""
        unknown = sorted(set(config.groups) - set(GROUPS))
        if unknown or not config.groups:
            raise ValueError(f"ranker groups {list(config.groups)}: choose from {', '.join(GROUPS)}")
        names = feature_names(kinds, config.groups, config.image_similarity)
        return cls(config, names, list(kinds), np.zeros(len(names)) if weights is None else weights)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    def features(self, facts: FactTable, query: QueryFacts, results: np.ndarray, scores: np.ndarray,
                 image_similarity: np.ndarray | None = None) -> ListFeatures:
        return list_features(facts, query, results, scores, self.names, self.kinds, image_similarity)

    def rank(self, features: ListFeatures) -> Ranking:
        """Stage one's list re-ordered by score (ties keep stage one's order)."""
        x = features.matrix
        scores = x @ self.weights
        facts = x[:, self.fact_columns]
        if not len(x) or not np.any(facts.max(0) - facts.min(0) > 1e-6):
            return Ranking(np.arange(len(x)), scores, features, reranked=False)
        return Ranking(np.argsort(-scores, kind="stable"), scores, features, reranked=True)

    def contributions(self, features: ListFeatures) -> np.ndarray:
        """[n, len(names)]: each column's weight times how far the result's value is from the list's mean
        (a row sums to the result's score minus the list's mean score)."""
        x = features.matrix
        return (x - x.mean(0, keepdims=True)) * self.weights[None, :]

    def weight_of(self, name: str) -> float:
        return float(self.weights[self.names.index(name)]) if name in self.names else 0.0

    @property
    def uses_embedding(self) -> bool:
        return EMBEDDING in self.config.groups

    # --- saving ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "config": asdict(self.config), "names": self.names, "kinds": self.kinds,
                "weights": [float(w) for w in self.weights], "meta": self.meta}

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path | str = "ranker") -> LinearRanker:
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a tailor ranker ({FORMAT})")
        config_data = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data["config"].items()}
        known = set(RankerConfig.__dataclass_fields__)
        config = RankerConfig(**{k: v for k, v in config_data.items() if k in known})
        return cls(config, list(data["names"]), list(data["kinds"]), np.asarray(data["weights"], np.float32),
                   data.get("meta", {}))

    @classmethod
    def load(cls, path: Path) -> LinearRanker:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        return cls.from_json(data, path)
