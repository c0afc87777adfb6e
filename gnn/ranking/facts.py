"""The facts the second stage ranks with, held in memory, and the feature matrix they give a result list.

A :class:`FactTable` is what the graph says about each image, read once from an export (and rebuilt by a
sync): every (image, attribute) fact with its strength (1 for a catalog or caption fact and a user's tag,
the classifier's confidence for a predicted one) and the source that gave it, each attribute's kind, and
the likes (LIKED_FROM, LIKED_WITH). It knows nothing of Neo4j and is saved beside the engine.

:func:`list_features` turns one query (its candidate, the attributes its caption adds, removes and
mentions, and the images liked for it) and the candidates stage one found into the rows the ranker
scores: one row per result, the columns named by :func:`feature_names`. Each column is one fact of the
result *against this query* (has what the query adds, lacks what it removes, keeps the candidate's other
attributes of each kind, ...), so the ranker's weight times a column is what that fact did to the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gnn.config import GraphConfig, RankerConfig
from readers.files import atomic_write
from readers.graph_records import HAS_ATTRIBUTE, LIKED_FROM, LIKED_WITH, USER_TAGGED, GraphExport

FORMAT = "tailor.facts/1"
# Where an attribute fact came from; "tag" is a USER_TAGGED edge (a user's or a curator's).
SOURCES = ("catalog", "predicted", "caption", "user", "tag")
OTHER_KIND = "other"  # kinds a ranker was not trained with are pooled here

# Feature groups, for the ablation: the embedding's view, the attribute facts, the interactions.
EMBEDDING, FACTS, INTERACTIONS = "embedding", "facts", "interactions"
GROUPS = (EMBEDDING, FACTS, INTERACTIONS)


@dataclass
class FactTable:
    """Attribute facts and likes of every image, as sorted arrays (fast to look up a result list in)."""

    image_ids: list[str]
    attribute_names: list[str]
    attribute_kinds: list[str]  # per attribute
    keys: np.ndarray  # int64, sorted: image_row * n_attributes + attribute_row, one per fact
    strength: np.ndarray  # float32 in (0, 1]: how sure the graph is of the fact
    source: np.ndarray  # int8 index into SOURCES of the strongest fact behind each key
    liked_from: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (image, candidate)
    liked_with: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (image, image)
    image_row: dict[str, int] = field(default_factory=dict, repr=False)
    attribute_row: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.image_row = {i: r for r, i in enumerate(self.image_ids)}
        self.attribute_row = {a: r for r, a in enumerate(self.attribute_names)}
        n_attr = max(1, len(self.attribute_names))
        rows = self.keys // n_attr
        self._starts = np.searchsorted(rows, np.arange(len(self.image_ids) + 1))
        self.kinds = sorted(set(self.attribute_kinds))
        kind_col = {k: i for i, k in enumerate(self.kinds)}
        self._kind_of = np.array([kind_col[k] for k in self.attribute_kinds], dtype=np.int64)
        # Per image and kind: the summed strength of its facts (what "other attributes of a kind" subtract from).
        self._kind_totals = np.zeros((len(self.image_ids), max(1, len(self.kinds))), np.float32)
        if len(self.keys):
            np.add.at(self._kind_totals, (rows, self._kind_of[self.keys % n_attr]), self.strength)
        self._liked_from = _adjacency(self.liked_from[:, ::-1])  # candidate -> images liked from it
        self._liked_with = _adjacency(np.concatenate([self.liked_with, self.liked_with[:, ::-1]]))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def has_likes(self) -> bool:
        return bool(len(self.liked_from) or len(self.liked_with))

    # --- reading -----------------------------------------------------------------------------------
    def facts_of(self, image_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attribute rows, strengths, sources) of one image's facts."""
        lo, hi = self._starts[image_row], self._starts[image_row + 1]
        return self.keys[lo:hi] % max(1, len(self.attribute_names)), self.strength[lo:hi], self.source[lo:hi]

    def lookup(self, image_rows: np.ndarray, attribute_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[n, m] strengths (0: no fact) and sources (-1: none) of ``image_rows`` x ``attribute_rows``."""
        n, m = len(image_rows), len(attribute_rows)
        if not n or not m or not len(self.keys):
            return np.zeros((n, m), np.float32), np.full((n, m), -1, np.int8)
        want = (np.asarray(image_rows, np.int64)[:, None] * len(self.attribute_names)
                + np.asarray(attribute_rows, np.int64)[None, :]).ravel()
        pos = np.searchsorted(self.keys, want).clip(max=len(self.keys) - 1)
        hit = self.keys[pos] == want
        strength = np.where(hit, self.strength[pos], 0.0).astype(np.float32).reshape(n, m)
        source = np.where(hit, self.source[pos], -1).astype(np.int8).reshape(n, m)
        return strength, source

    def kind_totals(self, image_rows: np.ndarray, kinds: Sequence[str]) -> np.ndarray:
        """[n, len(kinds)] summed fact strength per kind; this table's kinds that are not in ``kinds`` are
        pooled into :data:`OTHER_KIND` (when it is one of them)."""
        wanted = {k: j for j, k in enumerate(kinds)}
        out = np.zeros((len(image_rows), len(kinds)), np.float32)
        for i, kind in enumerate(self.kinds):
            j = wanted.get(kind, wanted.get(OTHER_KIND))
            if j is not None:
                out[:, j] += self._kind_totals[image_rows, i]
        return out

    def liked_from_candidate(self, candidate_row: int | None) -> set[int]:
        """Images liked from this candidate (for any query)."""
        return set() if candidate_row is None else self._liked_from.get(candidate_row, set())

    def liked_together(self, image_row: int) -> set[int]:
        """Images liked together with this one."""
        return self._liked_with.get(image_row, set())

    def kind(self, attribute_row: int) -> str:
        return self.attribute_kinds[attribute_row]

    # --- building ----------------------------------------------------------------------------------
    @classmethod
    def from_export(cls, export: GraphExport, sources: Iterable[str], tags: bool = True,
                    min_confidence: float = 0.0) -> FactTable:
        """The facts of ``export``'s images: HAS_ATTRIBUTE edges of ``sources`` (with their confidence),
        USER_TAGGED edges when ``tags``, and the likes. Where several edges state one fact, the strongest
        counts."""
        images = [r.id for r in export.images]
        names = list(export.attributes)
        image_row = {i: r for r, i in enumerate(images)}
        attr_row = {a: r for r, a in enumerate(names)}
        wanted = {f"{HAS_ATTRIBUTE}:{s}": SOURCES.index(s) if s in SOURCES else SOURCES.index("user")
                  for s in sources}
        best: dict[int, tuple[float, int]] = {}
        liked_from, liked_with = [], []
        n_attr = max(1, len(names))
        for e in export.edges:
            code = wanted.get(e.relation)
            if code is None and tags and e.relation == USER_TAGGED:
                code = SOURCES.index("tag")
            if code is not None:
                i, a = image_row.get(e.src), attr_row.get(e.dst)
                strength = 1.0 if e.confidence is None else float(e.confidence)
                if i is None or a is None or strength <= 0 or strength < min_confidence:
                    continue
                key = i * n_attr + a
                if key not in best or strength > best[key][0]:
                    best[key] = (min(strength, 1.0), code)
            elif e.relation in (LIKED_FROM, LIKED_WITH):
                i, j = image_row.get(e.src), image_row.get(e.dst)
                if i is not None and j is not None:
                    (liked_from if e.relation == LIKED_FROM else liked_with).append((i, j))
        keys = np.array(sorted(best), dtype=np.int64)
        return cls(images, names, [export.attributes[a] for a in names], keys,
                   np.array([best[k][0] for k in keys.tolist()], np.float32),
                   np.array([best[k][1] for k in keys.tolist()], np.int8),
                   _pairs(liked_from), _pairs(liked_with))

    # --- saving ------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        arrays = {"format": np.array(FORMAT), "image_ids": np.array(self.image_ids, dtype=str),
                  "attribute_names": np.array(self.attribute_names, dtype=str),
                  "attribute_kinds": np.array(self.attribute_kinds, dtype=str), "keys": self.keys,
                  "strength": self.strength, "source": self.source, "liked_from": self.liked_from,
                  "liked_with": self.liked_with}
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: Path) -> FactTable:
        blob = np.load(path, allow_pickle=False)
        if str(blob["format"]) != FORMAT:
            raise ValueError(f"{path}: not a tailor fact table ({FORMAT})")
        return cls(blob["image_ids"].tolist(), blob["attribute_names"].tolist(), blob["attribute_kinds"].tolist(),
                   blob["keys"].astype(np.int64), blob["strength"].astype(np.float32),
                   blob["source"].astype(np.int8), blob["liked_from"].astype(np.int64).reshape(-1, 2),
                   blob["liked_with"].astype(np.int64).reshape(-1, 2))


def _pairs(rows: list[tuple[int, int]]) -> np.ndarray:
    return np.array(sorted(set(rows)), dtype=np.int64).reshape(-1, 2)


def _adjacency(pairs: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for a, b in pairs.tolist():
        out.setdefault(a, set()).add(b)
    return out


def fact_sources(ranker: RankerConfig, graph: GraphConfig) -> tuple[str, ...]:
    """The HAS_ATTRIBUTE sources a second stage reads: the ranker config's, else its stage-one model's."""
    return tuple(ranker.attribute_sources or graph.attribute_sources)


# --- the feature matrix of a result list ---------------------------------------------------------------


def feature_names(kinds: Sequence[str], groups: Sequence[str] = GROUPS, image_similarity: bool = True
                  ) -> list[str]:
    """The ranker's columns, in order. ``kinds``: attribute kinds with their own "keeps"/"other" column."""
    names: list[str] = []
    if EMBEDDING in groups:
        names += ["embedding_score", "embedding_rank"] + (["image_similarity"] if image_similarity else [])
    if FACTS in groups:
        names += ["has_added", "lacks_removed", "has_mentioned"]
        names += [f"keeps:{k}" for k in kinds] + [f"other:{k}" for k in kinds]
    if INTERACTIONS in groups:
        names += ["liked_for_query", "liked_from_candidate", "liked_with_liked"]
    return names


@dataclass
class QueryFacts:
    """One query as the second stage sees it: rows into a :class:`FactTable` (None / -1: unknown)."""

    candidate: int | None
    added: list[int]
    removed: list[int]
    mentioned: list[int]
    liked: set[int] = field(default_factory=set)  # images liked for this very query

    @classmethod
    def of(cls, facts: FactTable, candidate: str, added: Iterable[str] = (), removed: Iterable[str] = (),
           mentioned: Iterable[str] = (), liked: Iterable[str] = ()) -> QueryFacts:
        """From ids and attribute names; names the graph does not know are left out (no fact can hold)."""
        def rows(names: Iterable[str]) -> list[int]:
            return list(dict.fromkeys(facts.attribute_row[a] for a in names if a in facts.attribute_row))

        added_rows = rows(added)
        removed_rows = [a for a in rows(removed) if a not in added_rows]
        taken = set(added_rows) | set(removed_rows)
        return cls(facts.image_row.get(candidate), added_rows, removed_rows,
                   [a for a in rows(mentioned) if a not in taken],
                   {facts.image_row[i] for i in liked if i in facts.image_row})


@dataclass
class ListFeatures:
    """The feature matrix of one result list and what it was made of (the explanations read it back)."""

    matrix: np.ndarray  # [n, len(names)] float32
    names: list[str]
    query: QueryFacts
    results: np.ndarray  # fact rows of the results (-1: an image the table does not know)
    kept: dict[str, list[tuple[int, float]]]  # kind -> the candidate's kept attributes (row, strength)


def list_features(
    facts: FactTable,
    query: QueryFacts,
    results: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    kinds: Sequence[str],
    image_similarity: np.ndarray | None = None,
) -> ListFeatures:
    """The ``names`` columns for ``results`` (fact rows, -1 where unknown: such a result has no facts),
    ranked by stage one with embedding ``scores``; ``image_similarity``: each result's image-feature
    cosine to the candidate (0 when not given)."""
    n = len(results)
    col = {name: j for j, name in enumerate(names)}
    x = np.zeros((n, len(names)), np.float32)
    known = results >= 0
    rows = np.where(known, results, 0)
    if "embedding_score" in col:
        x[:, col["embedding_score"]] = scores
        x[:, col["embedding_rank"]] = -np.log1p(np.arange(n, dtype=np.float32))
        if "image_similarity" in col and image_similarity is not None:
            x[:, col["image_similarity"]] = image_similarity
    kind_index = {k: j for j, k in enumerate(kinds)}
    kept: dict[str, list[tuple[int, float]]] = {}
    if "has_added" in col:
        asked = set(query.added) | set(query.removed)
        if query.candidate is not None:
            attrs, strengths, _ = facts.facts_of(query.candidate)
            for a, s in zip(attrs.tolist(), strengths.tolist(), strict=True):
                if a not in asked:
                    kept.setdefault(_kind(facts, a, kind_index), []).append((a, s))
        kept_rows = [a for items in kept.values() for a, _ in items]
        columns = list(query.added) + list(query.removed) + list(query.mentioned) + kept_rows
        got, _ = facts.lookup(rows, np.array(columns, np.int64))
        got[~known] = 0.0
        na, nr, nm = len(query.added), len(query.removed), len(query.mentioned)
        if na:
            x[:, col["has_added"]] = got[:, :na].mean(1)
        x[:, col["lacks_removed"]] = 1.0 - got[:, na : na + nr].mean(1) if nr else 1.0
        if nm:
            x[:, col["has_mentioned"]] = got[:, na + nr : na + nr + nm].mean(1)
        # What the result has of each kind beyond what the query wants (added, or kept from the candidate).
        other = facts.kind_totals(rows, kinds)
        other[~known] = 0.0
        for j, a in enumerate(query.added):
            other[:, kind_index[_kind(facts, a, kind_index)]] -= got[:, j]
        start = na + nr + nm
        for kind, items in kept.items():
            weights = np.array([s for _, s in items], np.float32)
            block = got[:, start : start + len(items)]
            start += len(items)
            x[:, col[f"keeps:{kind}"]] = block @ weights / weights.sum()
            other[:, kind_index[kind]] -= block @ weights
        for kind, j in kind_index.items():
            x[:, col[f"other:{kind}"]] = np.maximum(other[:, j], 0.0)
    if "liked_for_query" in col and (query.liked or facts.has_likes):
        from_candidate = facts.liked_from_candidate(query.candidate)
        anchors = query.liked | from_candidate
        for i, r in enumerate(results.tolist()):
            if r < 0:
                continue
            x[i, col["liked_for_query"]] = float(r in query.liked)
            x[i, col["liked_from_candidate"]] = float(r in from_candidate)
            x[i, col["liked_with_liked"]] = float(bool(facts.liked_together(r) & anchors))
    return ListFeatures(x, list(names), query, results, kept)


def _kind(facts: FactTable, attribute_row: int, kind_index: dict[str, int]) -> str:
    kind = facts.kind(attribute_row)
    return kind if kind in kind_index else OTHER_KIND
