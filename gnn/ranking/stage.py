"""The second stage as a search uses it: stage one's hits in, the same hits re-ordered and each one's
reasons out, from facts held in memory (no database read per query or per result).

A reason is one fact the ranker used and its weight: the fact's contribution to the result's score,
measured against the average of the list it was ranked in. The reasons of a result therefore add up to
how far it stands above or below the others, so "why this result" and "why this order" are one answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gnn.ranking.facts import SOURCES, FactTable, ListFeatures, QueryFacts
from gnn.ranking.model import LinearRanker, Ranking
from readers.graph_records import BaseDelta, GraphExport

_SHOWN = 4  # attribute names spelled out in one reason
_QUIET = 5e-3  # contributions smaller than this are not worth a line


class ImageVectors(Protocol):
    """Image features by id (:class:`engine.published.ImageFeatures` is one)."""

    row: dict[str, int]
    matrix: np.ndarray


@dataclass
class Reason:
    fact: str
    weight: float  # contribution to the score against the list's average

    def as_dict(self) -> dict[str, Any]:
        return {"fact": self.fact, "weight": round(float(self.weight), 3)}

    def __str__(self) -> str:
        return f"{self.fact} ({self.weight:+.2f})"


@dataclass
class Reranked:
    hits: list[tuple[str, float]]  # re-ordered, with the ranker's scores
    reasons: list[list[Reason]]  # per hit, strongest first
    reranked: bool  # False: no fact separated the results; stage one's order and scores are kept
    seconds: float = 0.0


@dataclass
class SecondStage:
    """A trained ranker with the facts and image features it reads."""

    ranker: LinearRanker
    facts: FactTable
    sources: tuple[str, ...]  # the HAS_ATTRIBUTE sources its facts are read from
    image_features: ImageVectors | None = None
    names_in_reasons: int = _SHOWN

    def with_facts(self, export: GraphExport) -> SecondStage:
        """A copy with its facts read again from the graph (after a sync): same sources, tags as the
        ranker's config says. A copy, so that searches running on this one never see a half-read table."""
        return dataclasses.replace(self, facts=FactTable.from_export(export, self.sources,
                                                                     tags=self.ranker.config.tags))

    def with_delta(self, delta: BaseDelta) -> SecondStage:
        """A copy whose facts follow a local refresh's delta (:meth:`FactTable.with_delta`)."""
        return dataclasses.replace(self, facts=self.facts.with_delta(delta, self.sources,
                                                                     tags=self.ranker.config.tags))

    @property
    def candidates(self) -> int:
        return self.ranker.config.candidates

    @property
    def enabled(self) -> bool:
        return self.ranker.config.enabled

    def rerank(self, candidate: str, hits: Sequence[tuple[str, float]], added: Iterable[str] = (),
               removed: Iterable[str] = (), mentioned: Iterable[str] = (), liked: Iterable[str] = (),
               k: int | None = None) -> Reranked:
        """``hits`` (stage one's, best first) re-ordered by the ranker; the first ``k`` (default: all) of
        the new order are returned, with their reasons."""
        query = QueryFacts.of(self.facts, candidate, added, removed, mentioned, liked,
                              exclusive_kinds=self.ranker.config.exclusive_kinds)
        ids = [h for h, _ in hits]
        results = np.array([self.facts.image_row.get(i, -1) for i in ids], dtype=np.int64)
        scores = np.array([s for _, s in hits], dtype=np.float32)
        features = self.ranker.features(self.facts, query, results, scores, self._similarity(candidate, ids))
        ranking = self.ranker.rank(features)
        order = ranking.order.tolist()[: len(ids) if k is None else k]
        reasons = self.reasons(ranking, order)
        if not ranking.reranked:
            return Reranked(list(hits)[: len(order)], reasons, False)
        return Reranked([(ids[i], float(ranking.scores[i])) for i in order], reasons, True)

    def _similarity(self, candidate: str, ids: list[str]) -> np.ndarray | None:
        vectors = self.image_features
        if vectors is None or candidate not in vectors.row:
            return None
        rows = [vectors.row.get(i, -1) for i in ids]
        known = np.array([r >= 0 for r in rows])
        if not known.any():
            return None
        matrix = vectors.matrix[[r for r in rows if r >= 0]]
        cand = vectors.matrix[vectors.row[candidate]]
        norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(cand)), 1e-12)
        out = np.zeros(len(ids), np.float32)
        out[known] = matrix @ cand / np.maximum(norms, 1e-12)
        return out

    # --- reasons -----------------------------------------------------------------------------------
    def reasons(self, ranking: Ranking, items: list[int]) -> list[list[Reason]]:
        """The reasons of the list's ``items`` (positions in stage one's list), strongest first."""
        f = ranking.features
        if not ranking.reranked:
            return [[Reason("no fact separates the results: ranked by embedding similarity alone "
                            f"(stage one rank {i + 1})", 0.0)] for i in items]
        contrib = self.ranker.contributions(f)
        return [self._reasons_of(f, contrib, i) for i in items]

    def _reasons_of(self, f: ListFeatures, contrib: np.ndarray, i: int) -> list[Reason]:
        col = {n: j for j, n in enumerate(f.names)}
        x = f.matrix
        facts, q, r = self.facts, f.query, int(f.results[i])
        out: list[Reason] = []
        if "embedding_score" in col:
            w = contrib[i, col["embedding_score"]] + contrib[i, col["embedding_rank"]]
            out.append(Reason(f"the embedding ranks it {i + 1} of {len(x)} (cosine "
                              f"{x[i, col['embedding_score']]:.3f})", w))
        if "image_similarity" in col:
            w = contrib[i, col["image_similarity"]] + (contrib[i, col["look_rank"]] if "look_rank" in col else 0.0)
            looks_known = "look_rank" in col and bool(np.ptp(x[:, col["image_similarity"]]) > 0)
            place = _place(x[i, col["look_rank"]]) if looks_known else None
            closest = ("" if place is None else ", the closest look in the list" if place == 1
                       else f", the {_ordinal(place)} closest look in the list")
            out.append(Reason(f"looks like the candidate (image-feature cosine "
                              f"{x[i, col['image_similarity']]:.2f}{closest})", w))
        if "has_added" in col:
            out += self._per_attribute(f, contrib, i, col["has_added"], q.added, "adds", wanted=True)
            out += self._per_attribute(f, contrib, i, col["lacks_removed"], q.removed, "removes", wanted=False)
            if "meets_all" in col:
                meets = x[i, col["meets_all"]]
                text = ("has all the query asks for and keeps the candidate's other attributes" if meets >= 0.5
                        else "misses some of what the query asks for or of the candidate's attributes")
                out.append(Reason(text, contrib[i, col["meets_all"]]))
                if "meets_all_looks" in col:
                    text = ("of the results that have all of it, looks like the candidate" if meets >= 0.5 else
                            "is not among the results that have all of it, however much it looks like the candidate")
                    out.append(Reason(text, contrib[i, col["meets_all_looks"]]))
            if "facet_jaccard" in col:
                share = x[i, col["facet_jaccard"]]
                out.append(Reason(f"matches {100 * share:.0f}% of the attributes the query wants (Jaccard: the "
                                  "ones it lacks and the extras it has count against it)", contrib[i, col["facet_jaccard"]]))
                if "facet_rank" in col:
                    out.append(Reason(f"a faceted filter (closest attribute match, then look) would place it "
                                      f"{_place(x[i, col['facet_rank']])} of {len(x)}", contrib[i, col["facet_rank"]]))
            mentioned = [a for a in q.mentioned if r >= 0 and facts.lookup(np.array([r]), np.array([a]))[0][0, 0]]
            if mentioned:
                out.append(Reason(f"has {self._names(mentioned)}, which the query mentions",
                                  contrib[i, col["has_mentioned"]]))
            elif q.mentioned:
                out.append(Reason(f"has none of {self._names(q.mentioned)}, which the query mentions",
                                  contrib[i, col["has_mentioned"]]))
            mine = set() if r < 0 else set(facts.facts_of(r)[0].tolist())
            for kind, items in f.kept.items():
                kept = [a for a, _ in items if a in mine]
                lost = [a for a, _ in items if a not in mine]
                w = contrib[i, col[f"keeps:{kind}"]]
                if kept and not lost:
                    text = f"keeps the candidate's {kind} {self._names(kept)}"
                elif kept:
                    text = f"keeps the candidate's {kind} {self._names(kept)} but not {self._names(lost)}"
                else:
                    text = f"does not keep the candidate's {kind} {self._names(lost)}"
                out.append(Reason(text, w))
            wanted = set(q.added) | {a for items in f.kept.values() for a, _ in items}
            extra: dict[str, list[int]] = {}
            for a in sorted(mine - wanted):
                kind = facts.kind(a)
                kind = kind if f"other:{kind}" in col else "other"
                extra.setdefault(kind, []).append(a)
            for name in f.names:
                if not name.startswith("other:"):
                    continue
                kind = name.split(":", 1)[1]
                if kind in extra:
                    text = (f"also has {kind} {self._names(extra[kind])}, which neither the candidate keeps nor "
                            "the query adds")
                else:
                    text = f"has no {kind} beyond what the query asks for"
                out.append(Reason(text, contrib[i, col[name]]))
        if "liked_for_query" in col:
            for name, text in (("liked_for_query", "was liked for this query"),
                               ("liked_from_candidate", "was liked from the same candidate"),
                               ("liked_with_liked", "is liked together with images liked for this query or "
                                                    "from its candidate")):
                if x[i, col[name]] > 0:
                    out.append(Reason(text, contrib[i, col[name]]))
        shown = [o for o in out if abs(o.weight) >= _QUIET]
        if not shown:
            shown = [Reason("no fact separates it from the other results", 0.0)]
        return sorted(shown, key=lambda o: -o.weight)

    def _per_attribute(self, f: ListFeatures, contrib: np.ndarray, i: int, column: int, attrs: list[int],
                       verb: str, wanted: bool) -> list[Reason]:
        """One reason per attribute the query adds (or removes); the column's contribution split by each
        attribute's share of it (the column is their mean)."""
        if not attrs:
            return []
        valid = f.results >= 0
        rows = np.where(valid, f.results, 0)
        got, source = self.facts.lookup(rows, np.array(attrs, np.int64))
        got[~valid] = 0.0
        value = got if wanted else 1.0 - got
        weight = self.ranker.weights[column]
        share = weight * (value - value.mean(0, keepdims=True)) / len(attrs)
        out = []
        for j, a in enumerate(attrs):
            name = self.facts.attribute_names[a]
            has = got[i, j] > 0
            how = _evidence(got[i, j], int(source[i, j]))
            if wanted:
                text = f"has '{name}'{how}, which the query {verb}" if has else \
                    f"does not have '{name}', which the query {verb}"
            else:
                text = f"still has '{name}'{how}, which the query {verb}" if has else \
                    f"does not have '{name}', which the query {verb}"
            out.append(Reason(text, float(share[i, j])))
        return out

    def _names(self, rows: list[int]) -> str:
        names = [f"'{self.facts.attribute_names[a]}'" for a in rows]
        more = len(names) - self.names_in_reasons
        return ", ".join(names[: self.names_in_reasons]) + (f" and {more} more" if more > 0 else "")


def _evidence(strength: float, source: int) -> str:
    if source < 0:
        return ""
    name = SOURCES[source]
    if name == "predicted":
        return f" (predicted, confidence {strength:.2f})"
    if name == "tag":
        return " (tagged by a user)"
    return f" ({name})"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _place(log_rank: float) -> int:
    """The 1-based place a rank column's value stands for (the column holds -log1p of the 0-based place)."""
    return int(np.expm1(-log_rank).round()) + 1
