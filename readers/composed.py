"""Composed queries built from a catalog the way Fashion200K's were, with a group-wise train/val/test split.

Fashion200K (TIRG) pairs two images whose captions differ in exactly one word and asks "replace X with
Y". Here the caption is a catalog display name and the differing word is an attribute value the catalog
knows, so the direction of the change is exact: ``removed=(source value,)``, ``added=(target value,)``.

Grouping (one rule for every kind: colour, gender, article type, usage):

* The **group key** of a product for kind K is its normalised display name with K's value removed, plus
  the values of the other pair kinds (``context_kinds``, by default the other three of colour / gender /
  article type / usage). Two products of a group differ in K and agree on every other visible attribute,
  so each pair differs in *exactly one* attribute value. Season and year are not in the context: they
  do not show in a photo.
* **Which words are removed**: the value's whole-word token sequence (``"navy blue"`` is two tokens,
  matched as one; a compound word holding it, "Off-White", "DK.Grey", goes whole) at its *last*
  occurrence after the brand. The brand is the words before the first gender word ("Red Tape Men ...",
  "Black Coffee Men ..."), or the first word when no gender word is present; failing an occurrence after
  the brand, the last one that is not the title's first word is used ("Kiara Black Women Handbag"). All
  myntra titles that start with a colour word start with a brand. So "Red Tape Men Red Shoes" drops the
  second "Red", and "Black Coffee Men Solid Black Slim Fit Shirt" keeps "Black Coffee".
* **Names that lack their value's words** (481 myntra names lack their colour word, e.g. "Lee Men Check
  Shirt", or carry another colour than ``baseColour``; 3 more have no colour at all): nothing can be
  removed, so the key is the whole name. Such a product pairs with products whose names are identical,
  and with products whose name *minus their own colour word* equals it ("Lee Men Check Blue Shirt"): the
  catalog attribute, not the title, then supplies the differing value. One uniform rule keeps
  near-identical product lines in one group, so they cannot straddle train and test.
* **Usage** never appears in names, so usage pairs are products with identical names (and identical
  colour, gender, article type) whose catalog usage differs; article-type pairs need the type's words in
  the name ("Tshirts" vs "Tops") or identical names.
* **Byte-identical images** (myntra-small has 106 sets, 213 files) are found by hashing the image bytes;
  a pair whose candidate and target images are byte-identical is not a valid query (the answer would be
  the question) and is dropped and counted.

Splitting: a product can be in several groups (its colour group, its gender group, ...) and two files
can hold the same picture, so groups that share an image, or byte-identical images, are joined into one
*split unit* (connected components). Each unit gets train/val/test from a stable SHA-256 of its key (the
smallest group key in it; default 70/10/20, seeded): every query of a unit, and every image in it, has
the unit's split, so no test pair, test image or test target's group is seen in training. Images in no
group go to train. The result is saved to JSON (atomically) and loaded back, so every run uses the same
queries.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from readers.files import atomic_write
from readers.records import ImageRecord, QueryRecord, ReaderError, normalise_value
from readers.splits import DEFAULT_RATIOS, SPLITS, assign_split, check_ratios

__all__ = [
    "PAIR_KINDS",
    "ComposedConfig",
    "ComposedQueries",
    "balanced",
    "build_composed_queries",
    "group_key_title",
    "hash_images",
    "load_or_build",
]

PAIR_KINDS: tuple[str, ...] = ("colour", "gender", "article_type", "usage")
GENDER_WORDS = frozenset({"men", "women", "boys", "girls", "unisex", "kids", "mens", "womens", "men's",
                          "women's", "ladies", "gents"})
FORMAT = "tailor.composed-queries"
VERSION = 1
_EDGE_PUNCT = "()[]{},.;:!?\"'"
_QUERY_COLUMNS = ("id", "candidate", "target", "text", "split", "group", "kind", "added", "removed")
_IMAGE_COLUMNS = ("id", "split", "group")


@dataclass(frozen=True)
class ComposedConfig:
    """How composed queries are built and split.

    ``kinds``: attribute kinds that may differ within a pair, in priority order (an image's ``group`` is
    its group of the first kind it has one for). ``context_kinds``: kinds whose values must agree within
    a group (the varying kind excepted); None means ``kinds``. ``template``: the relative caption, with
    ``{source}`` and ``{target}``; ``templates`` overrides it per kind. ``ratios``: train/val/test shares
    of split units. ``hash_images``: drop pairs whose two images are byte-identical.
    """

    kinds: tuple[str, ...] = PAIR_KINDS
    context_kinds: tuple[str, ...] | None = None
    template: str = "replace {source} with {target}"
    templates: Mapping[str, str] = field(default_factory=dict)
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    seed: int = 0
    hash_images: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", check_ratios(self.ratios))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        if self.context_kinds is not None:
            object.__setattr__(self, "context_kinds", tuple(self.context_kinds))
        object.__setattr__(self, "templates", dict(self.templates))
        for t in (self.template, *self.templates.values()):
            if "{source}" not in t or "{target}" not in t:
                raise ValueError(f"caption template needs {{source}} and {{target}}: {t!r}")

    def caption(self, kind: str, source: str, target: str) -> str:
        """The relative caption asking to change ``source`` into ``target`` (values of ``kind``)."""
        return self.templates.get(kind, self.template).format(source=source, target=target)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (saved beside the queries, compared on load)."""
        d = asdict(self)
        d["kinds"], d["ratios"] = list(self.kinds), list(self.ratios)
        d["context_kinds"] = None if self.context_kinds is None else list(self.context_kinds)
        d["templates"] = dict(self.templates)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ComposedConfig:
        """Inverse of :meth:`to_json`."""
        ctx = d.get("context_kinds")
        return cls(kinds=tuple(d["kinds"]), context_kinds=None if ctx is None else tuple(ctx),
                   template=d["template"], templates=dict(d.get("templates", {})),
                   ratios=tuple(d["ratios"]), seed=int(d["seed"]), hash_images=bool(d["hash_images"]))


def _tokens(title: str) -> list[str]:
    """Normalised title words (lower-case, single spaces)."""
    t = normalise_value(title)
    return t.split(" ") if t else []


@dataclass(frozen=True)
class _Title:
    """A display name split once for all kinds: words, words without edge punctuation, compound parts."""

    tokens: tuple[str, ...]
    bare: tuple[str, ...]
    compounds: tuple[tuple[int, tuple[str, ...]], ...]
    brand_end: int

    @classmethod
    def of(cls, title: str) -> _Title:
        tokens = tuple(_tokens(title))
        bare = tuple(t.strip(_EDGE_PUNCT) for t in tokens)
        compounds = tuple((i, tuple(p for p in _COMPOUND.split(t) if p)) for i, t in enumerate(bare)
                          if "-" in t or "." in t)
        return cls(tokens, bare, compounds, _brand_end(bare))


def _brand_end(bare: Sequence[str]) -> int:
    """Index of the first word after the brand: the first gender word, else 1 (titles start with a brand)."""
    for i, tok in enumerate(bare):
        if tok in GENDER_WORDS:
            return i
    return min(1, len(bare))


_COMPOUND = re.compile(r"[-.]+")


def _occurrences(title: _Title, vtok: tuple[str, ...]) -> list[tuple[int, int]]:
    """Token spans holding the value: the exact word sequence, or one compound word that contains it
    between '-' or '.' ("Off-White", "DK.Grey", "Silver-Toned": the whole word goes, shade and all)."""
    k, bare = len(vtok), title.bare
    first = vtok[0]
    spans = [(i, i + k) for i, tok in enumerate(bare) if tok == first and bare[i: i + k] == vtok]
    for i, parts in title.compounds:
        if len(parts) > 1 and any(parts[j: j + k] == vtok for j in range(len(parts) - k + 1)):
            spans.append((i, i + 1))
    return sorted(spans)


def _strip_value(title: _Title, value: str, protect_brand: bool = True) -> tuple[str, bool]:
    """``group_key_title`` on a pre-split title."""
    vtok = tuple(_tokens(value))
    tokens = title.tokens
    if not vtok:
        return " ".join(tokens), False
    spans = _occurrences(title, vtok)
    if protect_brand:
        outside = [sp for sp in spans if sp[0] >= title.brand_end]
        spans = outside or [sp for sp in spans if sp[0] >= 1]
    if not spans:
        return " ".join(tokens), False
    i, j = spans[-1]
    return " ".join((*tokens[:i], *tokens[j:])), True


def group_key_title(title: str, value: str, protect_brand: bool = True) -> tuple[str, bool]:
    """The normalised title with ``value``'s words removed, and whether they were found.

    Removes the *last* whole-word occurrence of the value's word sequence (or a compound word holding it,
    such as "Off-White" or "DK.Grey") that lies after the brand; failing that, the last one that is not the
    first word (every myntra title starts with its brand: "Red Tape", "Black Coffee", "Pink Floyd"). With
    no such occurrence the title is returned whole with False. ``protect_brand=False`` takes the last
    occurrence anywhere (used for gender, whose words are what delimits the brand).
    """
    return _strip_value(_Title.of(title), value, protect_brand)


def _hash_file(path: str) -> str | None:
    """BLAKE2b digest of a file's bytes, or None when the file cannot be read."""
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
    except OSError:
        return None


def hash_images(records: Iterable[ImageRecord], image_root: str | Path | None = None,
                workers: int = 8) -> dict[str, str | None]:
    """image id -> digest of the image file's bytes (None when absent), read on a few threads."""
    recs = list(records)
    paths = []
    for r in recs:
        p = r.image_path
        if p and image_root is not None and not os.path.isabs(p):
            p = os.path.join(image_root, p)
        paths.append(p)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(pool.map(lambda p: _hash_file(p) if p else None, paths))
    return {r.id: d for r, d in zip(recs, digests, strict=True)}


class _UnionFind:
    """Connected components over string keys (group keys)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Keep the smaller key as root, so a unit's key is its smallest group key.
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


@dataclass
class ComposedQueries:
    """Queries with their splits, image -> split and image -> group, and build statistics."""

    queries: list[QueryRecord]
    image_splits: dict[str, str]
    image_groups: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    config: ComposedConfig = field(default_factory=ComposedConfig)

    def split(self, name: str) -> list[QueryRecord]:
        """The queries of one split (train, val or test)."""
        return [q for q in self.queries if q.split == name]

    def counts(self) -> dict[str, Any]:
        """Counts per split, per kind and per split x kind; groups, units, images; build statistics."""
        by_split = Counter(q.split for q in self.queries)
        by_kind = Counter(q.extra.get("kind", "") for q in self.queries)
        split_kind: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        groups: dict[str, set[str]] = defaultdict(set)
        group_split: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        for q in self.queries:
            kind = q.extra.get("kind", "")
            split_kind.setdefault(q.split, {})
            split_kind[q.split][kind] = split_kind[q.split].get(kind, 0) + 1
            if q.group not in groups[kind]:
                groups[kind].add(q.group)
                group_split.setdefault(q.split, Counter())[kind] += 1
        images = Counter(self.image_splits.values())
        return {
            "queries": len(self.queries),
            "by_split": {s: by_split.get(s, 0) for s in SPLITS},
            "by_kind": dict(sorted(by_kind.items())),
            "by_split_kind": split_kind,
            "groups": sum(len(g) for g in groups.values()),
            "groups_by_kind": {k: len(g) for k, g in sorted(groups.items())},
            "groups_by_split": {s: sum(c.values()) for s, c in group_split.items()},
            "images_by_split": {s: images.get(s, 0) for s in SPLITS},
            **self.stats,
        }

    def assign(self, records: Iterable[ImageRecord]) -> Iterator[ImageRecord]:
        """The records with ``split`` and ``group`` filled in (images unknown to the split go to train)."""
        for r in records:
            yield replace(r, split=self.image_splits.get(r.id, "train"), group=self.image_groups.get(r.id, ""))

    def save(self, path: str | Path) -> Path:
        """Write to JSON atomically (a temporary file in the same folder, then a rename)."""
        groups = sorted({q.group for q in self.queries} | set(self.image_groups.values()))
        index = {g: i for i, g in enumerate(groups)}
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_json(),
            "stats": self.stats,
            "groups": groups,
            "images": {"columns": list(_IMAGE_COLUMNS),
                       "rows": [[i, s, index[self.image_groups.get(i, "")]] for i, s in self.image_splits.items()]},
            "queries": {"columns": list(_QUERY_COLUMNS),
                        "rows": [[q.id, q.candidate_id, q.target_id, q.text, q.split, index[q.group],
                                  q.extra.get("kind", ""), list(q.added), list(q.removed)]
                                 for q in self.queries]},
        }
        return atomic_write(path, json.dumps(doc, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | Path) -> ComposedQueries:
        """Read a file written by :meth:`save`; bad content raises ReaderError."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ReaderError(str(path), e.lineno, f"invalid JSON ({e.msg})", "(document)") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ReaderError(str(path), 1, f"not a {FORMAT} file", "format")
        if doc.get("version") != VERSION:
            raise ReaderError(str(path), 1, f"unsupported version {doc.get('version')!r}", "version")
        try:
            groups = list(doc["groups"])
            if doc["queries"]["columns"] != list(_QUERY_COLUMNS) or doc["images"]["columns"] != list(
                    _IMAGE_COLUMNS):
                raise ReaderError(str(path), 1, "unexpected columns", "columns")
            queries = [
                QueryRecord(id=qid, candidate_id=cand, target_id=target, text=text, split=split,
                            group=groups[g], added=tuple(added), removed=tuple(removed), extra={"kind": kind})
                for qid, cand, target, text, split, g, kind, added, removed in doc["queries"]["rows"]
            ]
            image_splits = {i: s for i, s, _ in doc["images"]["rows"]}
            image_groups = {i: groups[g] for i, _, g in doc["images"]["rows"]}
            config = ComposedConfig.from_json(doc["config"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, ReaderError):
                raise
            raise ReaderError(str(path), 1, f"malformed content ({type(e).__name__}: {e})", "queries") from None
        return cls(queries=queries, image_splits=image_splits, image_groups=image_groups,
                   stats=dict(doc.get("stats", {})), config=config)


def _values_by_kind(record: ImageRecord) -> dict[str, str]:
    """kind -> the record's (first) value of that kind."""
    out: dict[str, str] = {}
    for a in record.attributes:
        out.setdefault(a.kind, a.value)
    return out


def build_composed_queries(records: Iterable[ImageRecord], config: ComposedConfig | None = None, *,
                           image_root: str | Path | None = None,
                           digests: Mapping[str, str | None] | None = None) -> ComposedQueries:
    """Pairs of products that differ in exactly one attribute value, as "replace A with B" queries.

    Every ordered pair (a, b) within a group whose values differ gives a query (candidate a, target b).
    See the module docstring for grouping, traps and the split. ``digests`` (image id -> byte hash) may be
    passed to skip hashing; otherwise images are hashed when ``config.hash_images``.
    """
    config = config or ComposedConfig()
    recs = list(records)
    ids = [r.id for r in recs]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"image id {dup!r} appears more than once")
    context = config.context_kinds if config.context_kinds is not None else config.kinds

    if digests is None:
        digests = hash_images(recs, image_root) if config.hash_images else {}
    by_digest: dict[str, list[str]] = defaultdict(list)
    for rid, d in digests.items():
        if d is not None:
            by_digest[d].append(rid)
    identical_sets = [sorted(v) for v in by_digest.values() if len(v) > 1]

    # kind -> group key -> [(record, value)]
    groups: dict[str, dict[str, list[tuple[ImageRecord, str]]]] = {k: defaultdict(list) for k in config.kinds}
    without_value: Counter[str] = Counter()
    without_value_ids: dict[str, list[str]] = defaultdict(list)
    for r in recs:
        values = _values_by_kind(r)
        title_words = _Title.of(r.title)
        for kind in config.kinds:
            value = values.get(kind)
            if not value:
                continue
            title, found = _strip_value(title_words, value, protect_brand=kind != "gender")
            if not found:
                without_value[kind] += 1
                without_value_ids[kind].append(r.id)
            ctx = "".join(f"|{ck}={values.get(ck, '')}" for ck in context if ck != kind)
            groups[kind][f"{kind}:{title}{ctx}"].append((r, value))

    # Ordered pairs within groups.
    pairs: list[tuple[str, str, ImageRecord, str, ImageRecord, str]] = []
    dropped: Counter[str] = Counter()
    for kind in config.kinds:
        for key in sorted(groups[kind]):
            members = groups[kind][key]
            if len({v for _, v in members}) < 2:
                continue
            for a, va in members:
                for b, vb in members:
                    if va == vb:
                        continue
                    da, db = digests.get(a.id), digests.get(b.id)
                    if da is not None and da == db:
                        dropped[kind] += 1
                        continue
                    pairs.append((kind, key, a, va, b, vb))

    # Split units: groups that share an image, or hold byte-identical images, are one unit.
    uf = _UnionFind()
    image_group_keys: dict[str, list[str]] = defaultdict(list)
    for _, key, a, _, b, _ in pairs:
        for rid in (a.id, b.id):
            if key not in image_group_keys[rid]:
                image_group_keys[rid].append(key)
    for keys in image_group_keys.values():
        for k in keys[1:]:
            uf.union(keys[0], k)
    for ids_ in identical_sets:
        keyed = [image_group_keys[i][0] for i in ids_ if image_group_keys.get(i)]
        for k in keyed[1:]:
            uf.union(keyed[0], k)
    unit_split: dict[str, str] = {}

    def split_of(key: str) -> str:
        root = uf.find(key)
        if root not in unit_split:
            unit_split[root] = assign_split(root, config.ratios, config.seed)
        return unit_split[root]

    queries = [
        QueryRecord(id=f"{kind}:{a.id}>{b.id}", candidate_id=a.id, target_id=b.id,
                    text=config.caption(kind, va, vb), split=split_of(key), group=key,
                    added=(vb,), removed=(va,), extra={"kind": kind})
        for kind, key, a, va, b, vb in pairs
    ]
    kind_rank = {k: i for i, k in enumerate(config.kinds)}
    image_splits: dict[str, str] = {}
    image_groups: dict[str, str] = {}
    for r in recs:
        keys = image_group_keys.get(r.id)
        if keys:
            image_splits[r.id] = split_of(keys[0])
            image_groups[r.id] = min(keys, key=lambda k: (kind_rank[k.split(":", 1)[0]], k))
        else:
            image_splits[r.id] = "train"
            image_groups[r.id] = ""
    units = Counter(unit_split.values())
    stats = {
        "images": len(recs),
        "units_by_split": {s: units.get(s, 0) for s in SPLITS},
        "largest_unit_groups": max(Counter(uf.find(k) for k in {p[1] for p in pairs}).values(), default=0),
        "dropped_identical_pairs": sum(dropped.values()),
        "dropped_identical_by_kind": dict(sorted(dropped.items())),
        "identical_image_sets": len(identical_sets),
        "identical_image_files": sum(len(s) for s in identical_sets),
        "unreadable_images": sum(1 for r in recs if config.hash_images and digests.get(r.id) is None),
        "names_without_value": {k: without_value.get(k, 0) for k in config.kinds},
    }
    return ComposedQueries(queries=queries, image_splits=image_splits, image_groups=image_groups,
                           stats=stats, config=config)


def load_or_build(path: str | Path, records: Iterable[ImageRecord], config: ComposedConfig | None = None,
                  **kwargs: Any) -> ComposedQueries:
    """Load the saved split at ``path``, or build and save it: every run then uses the same queries.

    A saved file built with a different config raises ValueError (delete it to rebuild).
    """
    path = Path(path)
    config = config or ComposedConfig()
    if path.exists():
        loaded = ComposedQueries.load(path)
        if loaded.config != config:
            raise ValueError(f"{path} was built with {loaded.config}, not {config}; delete it to rebuild")
        return loaded
    built = build_composed_queries(records, config, **kwargs)
    built.save(path)
    return built


def balanced(queries: ComposedQueries | Iterable[QueryRecord], per_group: int = 20, seed: int = 0,
             split: str | None = "test") -> list[QueryRecord]:
    """At most ``per_group`` queries of each group (of ``split``; None = all), chosen by a seeded draw.

    One myntra group supplies ~40% of the test queries; recall on this set is not dominated by it.
    The draw depends only on the seed and each group's queries, and the input order is kept.
    """
    qs = queries.queries if isinstance(queries, ComposedQueries) else list(queries)
    by_group: dict[str, list[QueryRecord]] = defaultdict(list)
    for q in qs:
        if split is None or q.split == split:
            by_group[q.group].append(q)
    keep: set[str] = set()
    for group, members in by_group.items():
        ordered = sorted(members, key=lambda q: q.id)
        if len(ordered) > per_group:
            ordered = random.Random(f"{seed}:{group}").sample(ordered, per_group)
        keep.update(q.id for q in ordered)
    return [q for q in qs if q.id in keep]

