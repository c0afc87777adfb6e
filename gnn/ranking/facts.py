"""The facts the second stage ranks with, held in memory, and the feature matrix they give a result list.

A :class:`FactTable` is what the graph says about each image, read once from an export (and rebuilt by a
sync): every (image, attribute) fact with its strength (1 for a catalog or caption fact and a user's tag,
the classifier's confidence for a predicted one) and the source that gave it, each attribute's kind, and
the likes (LIKED_FROM, LIKED_WITH). It knows nothing of Neo4j and is saved beside the engine.

:func:`list_features` turns one query (its candidate, the attributes its caption adds, removes and
mentions, and the images liked for it) and the candidates stage one found into the rows the ranker
scores: one row per result, the columns named by :func:`feature_names`. Each column is one fact of the
result *against this query* (has what the query adds, lacks what it removes, keeps the candidate's other
attributes of each kind, passes the whole faceted filter at once, ...), so the ranker's weight times a
column is what that fact did to the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gnn.config import GraphConfig, RankerConfig
from readers.files import atomic_write
from readers.graph_records import (
    HAS_ATTRIBUTE,
    LIKED_FROM,
    LIKED_WITH,
    USER_TAGGED,
    BaseDelta,
    GraphExport,
    TypedEdge,
)

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
        self._pooled: dict[tuple[str, ...], np.ndarray] = {}  # kinds -> per-image totals pooled to them
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

    def lookup_batch(self, image_rows: np.ndarray, attribute_rows: np.ndarray) -> np.ndarray:
        """[q, n, m] strengths of ``image_rows`` [q, n] x ``attribute_rows`` [q, m] (0: no fact; a negative
        attribute row is padding and reads 0)."""
        q, n = image_rows.shape
        m = attribute_rows.shape[1]
        if not n or not m or not len(self.keys):
            return np.zeros((q, n, m), np.float32)
        want = image_rows[:, :, None] * len(self.attribute_names) + np.maximum(attribute_rows, 0)[:, None, :]
        pos = np.searchsorted(self.keys, want).clip(max=len(self.keys) - 1)
        return np.where(self.keys[pos] == want, self.strength[pos], 0.0).astype(np.float32)

    def kind_totals_batch(self, image_rows: np.ndarray, kinds: Sequence[str]) -> np.ndarray:
        """[..., len(kinds)] :meth:`kind_totals` of an array of image rows of any shape."""
        key = tuple(kinds)
        pooled = self._pooled.get(key)
        if pooled is None:
            pooled = self._pooled[key] = self.kind_totals(np.arange(len(self.image_ids)), kinds)
        return pooled[image_rows]

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
        best, liked_from, liked_with = _edge_facts(
            export.edges, {i: r for r, i in enumerate(images)}, {a: r for r, a in enumerate(names)},
            max(1, len(names)), sources, tags, min_confidence)
        keys = np.array(sorted(best), dtype=np.int64)
        return cls(images, names, [export.attributes[a] for a in names], keys,
                   np.array([best[k][0] for k in keys.tolist()], np.float32),
                   np.array([best[k][1] for k in keys.tolist()], np.int8),
                   _pairs(liked_from), _pairs(liked_with))

    def with_delta(self, delta: BaseDelta, sources: Iterable[str], tags: bool = True) -> FactTable:
        """A copy with the facts and likes of the delta's changed images read again from its edges (a local
        refresh: :func:`graphdb.export.read_base_delta` holds every base edge of those images) and its new
        attributes added. The images are this table's: a delta that adds or retires products goes through
        a full refresh and :meth:`from_export`."""
        names = list(self.attribute_names) + [a for a in delta.attributes if a not in self.attribute_row]
        kinds = list(self.attribute_kinds) + [delta.attributes[a] for a in names[len(self.attribute_names):]]
        old_n, n_attr = max(1, len(self.attribute_names)), max(1, len(names))
        keys = (self.keys // old_n) * n_attr + self.keys % old_n  # the same facts, keyed for the longer list
        changed = {self.image_row[i] for i in delta.images if i in self.image_row}
        changed_rows = np.array(sorted(changed), dtype=np.int64)
        keep = ~np.isin(keys // n_attr, changed_rows)
        best, liked_from, liked_with = _edge_facts(
            delta.edges, self.image_row, {a: r for r, a in enumerate(names)}, n_attr, sources, tags, 0.0,
            only=changed)
        new_keys = np.array(sorted(best), dtype=np.int64)
        merged = np.concatenate([keys[keep], new_keys])
        order = np.argsort(merged, kind="stable")
        strength = np.concatenate([self.strength[keep], [best[k][0] for k in new_keys.tolist()]]).astype(np.float32)
        source = np.concatenate([self.source[keep], [best[k][1] for k in new_keys.tolist()]]).astype(np.int8)

        def pairs(old: np.ndarray, new: list[tuple[int, int]]) -> np.ndarray:
            untouched = ~(np.isin(old[:, 0], changed_rows) | np.isin(old[:, 1], changed_rows))
            return _pairs([*map(tuple, old[untouched].tolist()), *new])

        return FactTable(list(self.image_ids), names, kinds, merged[order], strength[order], source[order],
                         pairs(self.liked_from, liked_from), pairs(self.liked_with, liked_with))

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


def _edge_facts(edges: Iterable[TypedEdge], image_row: dict[str, int], attr_row: dict[str, int], n_attr: int,
                sources: Iterable[str], tags: bool, min_confidence: float, only: set[int] | None = None
                ) -> tuple[dict[int, tuple[float, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """The facts ``edges`` state (key -> (strength, source code), the strongest where several state one)
    and the liked pairs; ``only``: the image rows whose facts are read (likes: pairs touching them)."""
    wanted = {f"{HAS_ATTRIBUTE}:{s}": SOURCES.index(s) if s in SOURCES else SOURCES.index("user") for s in sources}
    best: dict[int, tuple[float, int]] = {}
    liked_from, liked_with = [], []
    for e in edges:
        code = wanted.get(e.relation)
        if code is None and tags and e.relation == USER_TAGGED:
            code = SOURCES.index("tag")
        if code is not None:
            i, a = image_row.get(e.src), attr_row.get(e.dst)
            strength = 1.0 if e.confidence is None else float(e.confidence)
            if i is None or a is None or strength <= 0 or strength < min_confidence:
                continue
            if only is not None and i not in only:
                continue
            key = i * n_attr + a
            if key not in best or strength > best[key][0]:
                best[key] = (min(strength, 1.0), code)
        elif e.relation in (LIKED_FROM, LIKED_WITH):
            i, j = image_row.get(e.src), image_row.get(e.dst)
            if i is not None and j is not None and (only is None or i in only or j in only):
                (liked_from if e.relation == LIKED_FROM else liked_with).append((i, j))
    return best, liked_from, liked_with


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
        names += ["embedding_score", "embedding_rank"] + (["image_similarity", "look_rank"] if image_similarity else [])
    if FACTS in groups:
        names += ["has_added", "lacks_removed", "has_mentioned", "meets_all", "facet_jaccard"]
        if EMBEDDING in groups and image_similarity:
            names += ["meets_all_looks", "facet_rank"]
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
           mentioned: Iterable[str] = (), liked: Iterable[str] = (), exclusive_kinds: Iterable[str] = ()
           ) -> QueryFacts:
        """From ids and attribute names; names the graph does not know are left out (no fact can hold). A
        value added of one of ``exclusive_kinds`` replaces the candidate's values of that kind: they count
        as removed ("in black" on a pink shirt removes pink), as "replace pink with black" would say."""
        def rows(names: Iterable[str]) -> list[int]:
            return list(dict.fromkeys(facts.attribute_row[a] for a in names if a in facts.attribute_row))

        added_rows = rows(added)
        removed_rows = [a for a in rows(removed) if a not in added_rows]
        candidate_row = facts.image_row.get(candidate)
        exclusive = set(exclusive_kinds)
        replaced = {facts.kind(a) for a in added_rows} & exclusive
        if replaced and candidate_row is not None:
            own, _, _ = facts.facts_of(candidate_row)
            removed_rows += [a for a in own.tolist() if facts.kind(a) in replaced
                             and a not in added_rows and a not in removed_rows]
        taken = set(added_rows) | set(removed_rows)
        return cls(candidate_row, added_rows, removed_rows,
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


def kept_attributes(facts: FactTable, query: QueryFacts, kinds: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """The candidate's attributes the query keeps (neither added nor removed), by kind, with strengths."""
    kept: dict[str, list[tuple[int, float]]] = {}
    if query.candidate is None:
        return kept
    asked = set(query.added) | set(query.removed)
    kind_index = set(kinds)
    attrs, strengths, _ = facts.facts_of(query.candidate)
    for a, s in zip(attrs.tolist(), strengths.tolist(), strict=True):
        if a not in asked:
            kind = facts.kind(a)
            kept.setdefault(kind if kind in kind_index else OTHER_KIND, []).append((a, s))
    return kept


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
    cosine to the candidate (0 when not given). One list of :func:`batch_features`."""
    sim = None if image_similarity is None else np.asarray(image_similarity, np.float32)[None]
    matrix, kept = batch_features(facts, [query], np.asarray(results, np.int64)[None],
                                  np.asarray(scores, np.float32)[None], names, kinds, sim)
    return ListFeatures(matrix[0], list(names), query, np.asarray(results, np.int64), kept[0])


# One attribute of difference (a Jaccard step of at least 1/|union|, about 0.05) outweighs any cosine.
_FACET_TIER = 100.0


def _log_rank(score: np.ndarray) -> np.ndarray:
    """[q, n] -log(1 + place) of each item when its list is sorted by ``score``, highest first (ties in
    list order): the shape of ``embedding_rank``."""
    order = np.argsort(-score, axis=1, kind="stable")
    place = np.empty_like(order)
    np.put_along_axis(place, order, np.broadcast_to(np.arange(score.shape[1]), score.shape), axis=1)
    return -np.log1p(place).astype(np.float32)


def _padded(rows: list[list[int]], fill: int = -1) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), fill, np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def batch_features(
    facts: FactTable,
    queries: Sequence[QueryFacts],
    results: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    kinds: Sequence[str],
    image_similarity: np.ndarray | None = None,
) -> tuple[np.ndarray, list[dict[str, list[tuple[int, float]]]]]:
    """[q, n, len(names)] feature matrices of ``q`` lists at once (``results``, ``scores``: [q, n]), and
    each query's kept attributes by kind (see :func:`kept_attributes`)."""
    q_count, n = results.shape
    col = {name: j for j, name in enumerate(names)}
    x = np.zeros((q_count, n, len(names)), np.float32)
    known = results >= 0
    rows = np.where(known, results, 0)
    if "embedding_score" in col:
        x[:, :, col["embedding_score"]] = scores
        x[:, :, col["embedding_rank"]] = -np.log1p(np.arange(n, dtype=np.float32))[None]
        if "image_similarity" in col and image_similarity is not None:
            x[:, :, col["image_similarity"]] = image_similarity
            # The place the result's look gives it in the list, beside the place the embedding gives it: a
            # rank, not a cosine, so the ranker can weigh the two orders against each other.
            x[:, :, col["look_rank"]] = _log_rank(image_similarity)
    kind_index = {k: j for j, k in enumerate(kinds)}
    kept = [kept_attributes(facts, q, kinds) for q in queries] if "has_added" in col else [{} for _ in queries]
    if "has_added" in col:
        n_kinds = len(kinds)

        def strength_of(attrs: np.ndarray) -> np.ndarray:  # [q, n, m], 0 where padded or unknown
            got = facts.lookup_batch(rows, attrs)
            return got * (known[:, :, None] & (attrs >= 0)[:, None, :])

        def mean_of(got: np.ndarray, attrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            count = (attrs >= 0).sum(1)
            return got.sum(2) / np.maximum(count, 1)[:, None], count

        def kind_onehot(attrs: np.ndarray, weights: np.ndarray) -> np.ndarray:  # [q, m, kinds]
            out = np.zeros((*attrs.shape, n_kinds), np.float32)
            qi, mi = np.nonzero(attrs >= 0)
            ki = np.array([kind_index.get(facts.kind(a), kind_index.get(OTHER_KIND, 0)) for a in attrs[qi, mi]],
                          dtype=np.int64)
            out[qi, mi, ki] = weights[qi, mi]
            return out

        added = _padded([q.added for q in queries])
        removed = _padded([q.removed for q in queries])
        mentioned = _padded([q.mentioned for q in queries])
        kept_rows = _padded([[a for items in k.values() for a, _ in items] for k in kept])
        kept_weights = np.zeros(kept_rows.shape, np.float32)
        for i, k in enumerate(kept):
            w = [s for items in k.values() for _, s in items]
            kept_weights[i, : len(w)] = w
        got_added, got_removed, got_kept = strength_of(added), strength_of(removed), strength_of(kept_rows)
        # Kept values the filter facts count: those the candidate holds firmly (a predicted colour at 0.3 is
        # a guess). Padding has weight 0.
        firm = kept_weights >= 0.5  # [q, m]
        has_added, _ = mean_of(got_added, added)
        x[:, :, col["has_added"]] = has_added
        has_removed, n_removed = mean_of(got_removed, removed)
        x[:, :, col["lacks_removed"]] = np.where(n_removed[:, None] > 0, 1.0 - has_removed, 1.0)
        x[:, :, col["has_mentioned"]] = mean_of(strength_of(mentioned), mentioned)[0]
        if "meets_all" in col:
            # The faceted filter's test as one soft fact: every added value, none of the removed, every kept
            # one (the weakest of them). The columns above are means, which a linear score cannot combine
            # into "all of them"; this lets the ranker put the products that pass the whole filter first.
            def weakest(got: np.ndarray, counted: np.ndarray) -> np.ndarray:
                return np.where(counted[:, None, :], got, 1.0).min(2, initial=1.0)

            x[:, :, col["meets_all"]] = np.minimum.reduce([
                weakest(got_added, added >= 0), 1.0 - got_removed.max(2, initial=0.0),
                weakest(got_kept, firm),
            ]) * known
            if "meets_all_looks" in col and image_similarity is not None:
                # The faceted filter's order: among the products that pass it, the one that looks most alike.
                x[:, :, col["meets_all_looks"]] = x[:, :, col["meets_all"]] * image_similarity
        if "facet_jaccard" in col:
            # How closely the result's attributes match the ones the query wants (the added ones and the
            # candidate's firmly held kept ones), extras counted against it: the Jaccard index, with
            # strengths for counts. A removed value the result has is an extra.
            wanted_count = (added >= 0).sum(1) + firm.sum(1)  # [q]
            inter = got_added.sum(2) + np.where(firm[:, None, :], got_kept, 0.0).sum(2)
            total = facts.kind_totals_batch(rows, facts.kinds).sum(-1) * known
            union = wanted_count[:, None] + total - inter
            jaccard = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0) * known
            x[:, :, col["facet_jaccard"]] = jaccard
            if "facet_rank" in col:
                # Where the faceted filter would place the result: closest match first, look breaking ties
                # (list order where the candidate has no image features).
                looks = 0.0 if image_similarity is None else image_similarity
                x[:, :, col["facet_rank"]] = _log_rank(jaccard * _FACET_TIER + looks)
        # Keeps: the candidate's kept attributes of each kind the result has, weighted by the candidate's
        # strength; other: what the result has of each kind beyond what the query wants.
        by_kind = kind_onehot(kept_rows, kept_weights)  # [q, m, kinds]
        keeps = np.einsum("qnm,qmk->qnk", got_kept, by_kind)
        denominator = by_kind.sum(1)  # [q, kinds]
        other = facts.kind_totals_batch(rows, kinds) * known[:, :, None]
        other -= keeps + np.einsum("qnm,qmk->qnk", got_added, kind_onehot(added, np.ones(added.shape, np.float32)))
        keeps = np.where(denominator[:, None, :] > 0, keeps / np.maximum(denominator, 1e-12)[:, None, :], 0.0)
        for kind, j in kind_index.items():
            x[:, :, col[f"keeps:{kind}"]] = keeps[:, :, j]
            x[:, :, col[f"other:{kind}"]] = np.maximum(other[:, :, j], 0.0)
    if "liked_for_query" in col:
        for i, query in enumerate(queries):
            from_candidate = facts.liked_from_candidate(query.candidate)
            anchors = query.liked | from_candidate
            if not anchors:  # nothing liked for this query or from its candidate: every like column is 0
                continue
            for j, r in enumerate(results[i].tolist()):
                if r < 0:
                    continue
                x[i, j, col["liked_for_query"]] = float(r in query.liked)
                x[i, j, col["liked_from_candidate"]] = float(r in from_candidate)
                x[i, j, col["liked_with_liked"]] = float(bool(facts.liked_together(r) & anchors))
    return x, kept
