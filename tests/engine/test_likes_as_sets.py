"""Likes stored as sets (one LIKED_FOR per liked image; LIKED_WITH derived when the graph is read) rank
exactly as the old pairwise edges did, on a small graph with a real (synthetic-data) model."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from gnn.retrieval.refresh import base_features, refresh
from graphdb.export import liked_with_edges
from readers.graph_records import LIKED_FOR, LIKED_FROM, LIKED_WITH, GraphExport, TypedEdge


def _with_likes(export: GraphExport, likes, pairwise: bool) -> GraphExport:
    """``export`` plus the likes, the image-image edges either as the old code wrote them (one MERGEd edge
    per pair, person and like, in writing order) or derived from the liked sets."""
    edges = list(export.edges)
    captions = {c.id: c for c in export.captions}
    old_pairs: dict[tuple[str, str, str], None] = {}
    sets: dict[tuple[str, str], set[str]] = {}
    for caption, who, images in likes:
        for image in images:
            edges.append(TypedEdge(LIKED_FOR, "Image", image, "Caption", caption))
            if image != captions[caption].candidate:
                edges.append(TypedEdge(LIKED_FROM, "Image", image, "Image", captions[caption].candidate))
        ordered = sorted(images)
        for k, a in enumerate(ordered):
            for b in ordered[k + 1:]:
                old_pairs.setdefault((a, b, who), None)
        sets.setdefault((caption, who), set()).update(images)
    if pairwise:
        liked_with = [TypedEdge(LIKED_WITH, "Image", a, "Image", b) for a, b, _ in old_pairs]
        random.Random(0).shuffle(liked_with)  # the database returns them in no particular order
    else:
        pairs = [(a, b, who) for (_, who), images in sets.items() for a in images for b in images if a < b]
        liked_with = liked_with_edges(pairs)
    return replace(export, edges=edges + liked_with)


def test_liked_sets_rank_as_the_old_pairwise_edges(published) -> None:
    ws, engine, export, _ = published
    searcher = engine.searcher
    by_text = {c.id: c for c in export.captions if c.split == "train"}
    chosen = list(by_text)[:2]
    images = [r.id for r in export.images]
    # Two people, two queries, overlapping sets (one like per person and query, as the session writes).
    likes = [(chosen[0], "ann", images[3:7]), (chosen[0], "bo", images[5:9]), (chosen[1], "ann", images[4:6])]
    old = _with_likes(export, likes, pairwise=True)
    new = _with_likes(export, likes, pairwise=False)
    def liked_with(e: GraphExport) -> Counter:
        return Counter((x.src, x.dst) for x in e.edges if x.relation == LIKED_WITH)

    # ann: 6 pairs (her second query's pair is one of them), bo: 6
    assert liked_with(old) == liked_with(new) and sum(liked_with(new).values()) == 12

    def ranked(e: GraphExport):
        refreshed = refresh(searcher, e, base_features(e, engine.image_features, searcher.text_encoder),
                            engine.config.graph).engine
        return [refreshed.search(c.candidate, c.text, k=10).hits for c in export.captions if c.split == "test"]

    with_old, with_new, without = ranked(old), ranked(new), ranked(export)
    for a, b in zip(with_old, with_new, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)
    assert with_new != without  # the likes do change rankings: the comparison is not between no-ops
