"""A product catalog of any size with myntra-small's structure, for measuring how costs grow.

The generated catalog is made of copies of myntra-small's *split units* (product groups that share an
image, joined as :mod:`readers.composed` joins them). Copy 0 is myntra-small itself; every later copy
gives each unit a new brand ("Nike" becomes "Nike X7") and new product ids, and keeps every product's
catalog attributes. So the attribute vocabulary, the attributes' co-occurrence within a product, the
group sizes and the title shapes are myntra-small's, and the attribute nodes grow into hubs the way a
real catalog's do ("men" has 1 in 3 products at any size). Composed queries are built the Fashion200K
way within each generated group: a pair of products that differ in exactly the group's kind of attribute
becomes "replace A with B", at most ``queries_per_product`` per candidate (myntra-small has 6.6 a
product; a shop with a million products does not need 6.6 million training captions).

Image features are not computed: product ``p`` of copy ``c`` reuses the real EfficientNet feature of the
myntra product it copies, mixed with one of another myntra product of the same article type and colour
(weight up to ``mix``; copy 0 keeps its own feature unmixed), see :class:`gnn.features.rows.FeatureRows`.
Every product keeps its template's photo as its ``image_path``, so pictures still show a real product.

Everything is seeded: the same arguments give the same catalog on every machine. The catalog streams
(unit by unit), so a million products never sit in memory as records at once.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from readers.catalog import MYNTRA, read_catalog
from readers.composed import ComposedConfig, ComposedQueries, build_composed_queries
from readers.records import ImageRecord, QueryRecord
from readers.splits import assign_split

__all__ = ["CatalogChunk", "FeaturePlan", "ScaleCatalog", "TemplateUnit", "parse_size", "templates"]

_GENDER_WORDS = frozenset({"men", "women", "boys", "girls", "unisex", "kids"})


def parse_size(text: str) -> int:
    """``10k`` -> 10000, ``1m`` -> 1000000, ``2500`` -> 2500."""
    t = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    number = t[:-1] if scale > 1 else t
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise ValueError(f"not a catalog size: {text!r} (e.g. 10k, 100k, 1m)") from None
    if value < 1:
        raise ValueError(f"a catalog needs at least one product, not {text!r}")
    return value


@dataclass
class TemplateUnit:
    """A split unit of the template catalog: its products and its groups (kind, key, member rows)."""

    key: str
    rows: list[int]  # rows of the template records
    groups: list[tuple[str, str, list[int]]] = field(default_factory=list)


def templates(records: list[ImageRecord], composed: ComposedQueries) -> list[TemplateUnit]:
    """myntra-small's split units (groups joined where they share a product), plus one unit per product
    that is in no group. Unit order is stable (by key)."""
    row_of = {r.id: i for i, r in enumerate(records)}
    members: dict[tuple[str, str], set[int]] = defaultdict(set)
    for q in composed.queries:
        kind = q.extra.get("kind", "")
        for image in (q.candidate_id, q.target_id):
            if image in row_of:
                members[(kind, q.group)].add(row_of[image])
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for rows in members.values():
        first = min(rows)
        for r in rows:
            a, b = find(first), find(r)
            if a != b:
                parent[max(a, b)] = min(a, b)
    units: dict[int, TemplateUnit] = {}
    for (kind, key), rows in sorted(members.items()):
        root = find(min(rows))
        unit = units.setdefault(root, TemplateUnit(key=key, rows=[]))
        unit.groups.append((kind, key, sorted(rows)))
    for unit in units.values():
        unit.rows = sorted({r for _, _, rows in unit.groups for r in rows})
        unit.key = min(k for _, k, _ in unit.groups)
    grouped = {r for u in units.values() for r in u.rows}
    out = sorted(units.values(), key=lambda u: u.key)
    out += [TemplateUnit(key=f"single:{records[r].id}", rows=[r]) for r in range(len(records)) if r not in grouped]
    return out


@dataclass
class FeaturePlan:
    """How each generated product's image feature is made from the template's real features: row
    ``first`` mixed with row ``second`` at ``weight`` (rows of ``source_ids``, the template's ids)."""

    source_ids: list[str]
    first: list[int] = field(default_factory=list)
    second: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.first, np.int32), np.asarray(self.second, np.int32),
                np.asarray(self.weight, np.float32))

    def save(self, path: Path) -> None:
        from readers.files import atomic_write

        first, second, weight = self.arrays()
        atomic_write(path, lambda fh: np.savez(fh, source_ids=np.array(self.source_ids), first=first,
                                               second=second, weight=weight))

    @classmethod
    def load(cls, path: Path) -> FeaturePlan:
        blob = np.load(path, allow_pickle=False)
        return cls(blob["source_ids"].tolist(), blob["first"].tolist(), blob["second"].tolist(),
                   blob["weight"].tolist())


@dataclass
class CatalogChunk:
    """One generated unit: its products, then the composed queries among them."""

    images: list[ImageRecord]
    queries: list[QueryRecord]


def _brand_end(words: list[str]) -> int:
    for i, w in enumerate(words):
        if w.lower() in _GENDER_WORDS:
            return max(i, 1)
    return min(1, len(words))


def _rebrand(title: str, suffix: str) -> str:
    """The title with ``suffix`` after its brand ("Nike Men Polo" -> "Nike X7 Men Polo")."""
    if not suffix:
        return title
    words = title.split()
    end = _brand_end(words)
    return " ".join([*words[:end], suffix, *words[end:]])


def _copy_code(copy: int) -> str:
    """A short brand suffix per copy: X1, X2, ... (copy 0 keeps the original brand)."""
    return f"X{copy}" if copy else ""


class ScaleCatalog:
    """Generates catalogs of ``n`` products from a template catalog (myntra-small by default)."""

    def __init__(self, records: list[ImageRecord], composed: ComposedQueries, seed: int = 0,
                 queries_per_product: int = 2, mix: float = 0.3):
        if queries_per_product < 0:
            raise ValueError("queries_per_product must be 0 or more")
        self.records = records
        self.units = templates(records, composed)
        self.seed = seed
        self.queries_per_product = queries_per_product
        self.mix = mix
        self.caption = ComposedConfig().caption
        self.ratios = composed.config.ratios
        self._values = [{a.kind: a.value for a in r.attributes} for r in records]
        # Feature partners: other template products of the same article type and colour (else type).
        by_type_colour: dict[tuple[str, str], list[int]] = defaultdict(list)
        by_type: dict[str, list[int]] = defaultdict(list)
        for i, v in enumerate(self._values):
            by_type_colour[(v.get("article_type", ""), v.get("colour", ""))].append(i)
            by_type[v.get("article_type", "")].append(i)
        self._partners = []
        for v in self._values:
            pool = by_type_colour[(v.get("article_type", ""), v.get("colour", ""))]
            if len(pool) < 2:
                pool = by_type[v.get("article_type", "")]
            self._partners.append(pool)

    @classmethod
    def from_catalog(cls, path: Path, split_file: Path | None = None, **kwargs) -> ScaleCatalog:
        """The template from a myntra-style catalog; its composed queries from ``split_file`` when given
        (built from the catalog and its images otherwise)."""
        records = list(read_catalog(path, MYNTRA))
        if split_file is not None and split_file.exists():
            composed = ComposedQueries.load(split_file)
        else:
            composed = build_composed_queries(records, ComposedConfig(), image_root=path.parent)
        return cls(records, composed, **kwargs)

    def generate(self, n: int, plan: FeaturePlan | None = None) -> Iterator[CatalogChunk]:
        """``n`` products, unit by unit. ``plan`` (if given) receives each product's feature recipe, in
        product order."""
        emitted, copy = 0, 0
        while emitted < n:
            order = list(range(len(self.units)))
            if copy:
                random.Random(f"{self.seed}:order:{copy}").shuffle(order)
            for u in order:
                if emitted >= n:
                    return
                chunk = self._copy_unit(self.units[u], copy, emitted, n - emitted, plan)
                emitted += len(chunk.images)
                yield chunk
            copy += 1

    def _copy_unit(self, unit: TemplateUnit, copy: int, start: int, room: int,
                   plan: FeaturePlan | None) -> CatalogChunk:
        rng = random.Random(f"{self.seed}:unit:{copy}:{unit.key}")
        rows = unit.rows[:room]
        new_id = {r: f"p{start + k:07d}" for k, r in enumerate(rows)}
        split = "train" if not unit.groups else assign_split(f"{copy}:{unit.key}", self.ratios, self.seed)
        suffix = _copy_code(copy)
        images = []
        first_group = {}
        for kind, key, members in unit.groups:
            for r in members:
                first_group.setdefault(r, f"{kind}:{copy}:{key}")
        for r in rows:
            t = self.records[r]
            # (the constructor, not dataclasses.replace: a third of the time of a million products)
            images.append(ImageRecord(new_id[r], _rebrand(t.title, suffix), t.image_path, split,
                                      first_group.get(r, ""), t.attributes, start + len(images) + 1))
            if plan is not None:
                partners = self._partners[r]
                other = partners[rng.randrange(len(partners))] if copy and len(partners) > 1 else r
                plan.first.append(r)
                plan.second.append(other)
                plan.weight.append(rng.uniform(0.0, self.mix) if copy and other != r else 0.0)
        queries = []
        kept = set(rows)
        for kind, key, members in unit.groups:
            group = f"{kind}:{copy}:{key}"
            present = [r for r in members if r in kept and kind in self._values[r]]
            for a in present:
                va = self._values[a][kind]
                others = [b for b in present if self._values[b][kind] != va]
                if len(others) > self.queries_per_product:
                    others = rng.sample(others, self.queries_per_product)
                for b in others:
                    vb = self._values[b][kind]
                    queries.append(QueryRecord(
                        id=f"{kind}:{new_id[a]}>{new_id[b]}", candidate_id=new_id[a], target_id=new_id[b],
                        text=self.caption(kind, va, vb), split=split, group=group, added=(vb,),
                        removed=(va,), extra={"kind": kind}))
        return CatalogChunk(images, queries)

    def feature_plan(self) -> FeaturePlan:
        return FeaturePlan([r.id for r in self.records])

