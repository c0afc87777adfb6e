"""The paper's interaction experiments, answered with trained weights only (no retraining).

- **More metadata** (paper Table 3): start from a graph model over *predicted* attributes; people tag
  the top 5 (or 15) attributes by frequency on every image that has them, or on half of the images;
  recall on the test queries before and after.
- **I like that** (paper Table 4): on 1,000 test queries a shopper likes the 10 images nearest to the
  target in the model's embedding space; recall of those queries before and after, and the connection
  accuracy.

Interactions are simulated on the tensors (``gnn.data.simulation``) with the same edges the database gets,
so the experiments never write into a user's graph. Every row reports R@1/10/50 (exact id and caption
match, as in ``gnn.training.evaluation``) beside the paper's figures.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from experiments.figures import pyplot, save_figure
from gnn.data.graph import GraphTensors, QuerySet
from gnn.data.simulation import (
    EdgeBatch,
    TruthMap,
    attributes_by_frequency,
    like_edges,
    nearest_images,
    tag_edges,
    with_edges,
)
from gnn.training.evaluation import KS, gallery_rows, rank_queries, recall_at_k, retriever_scorer
from readers.files import atomic_write, atomic_write_json
from readers.graph_records import USER_TAGGED

# The reference paper's figures on Fashion200K (R@1, R@10, R@50), for the reports.
PAPER_MORE_METADATA = {
    "predicted attributes": (16.97, 40.0, 59.91),
    "top 5 tagged": (15.81, 75.77, 83.63),
    "top 15 tagged": (22.75, 75.63, 84.06),
}
PAPER_LIKES = {"before": (16.97, 40.0, 59.91), "after": (16.55, 62.26, 77.14), "connection_accuracy": 65.73}


@dataclass
class ExperimentRow:
    name: str
    recall: dict[str, float]
    edges: dict[str, int] = field(default_factory=dict)
    images_tagged: int = 0
    attributes: list[str] = field(default_factory=list)


@torch.no_grad()
def _ranked(model: nn.Module, g: GraphTensors, queries: QuerySet, rows: Tensor) -> Tensor:
    return rank_queries(retriever_scorer(model, g), queries, rows, max(KS))


def more_metadata(
    model: nn.Module,
    g: GraphTensors,
    truth: TruthMap,
    tops: tuple[int, ...] = (5, 15),
    fractions: tuple[float, ...] = (1.0, 0.5),
    split: str = "test",
    seed: int = 0,
    kinds: dict[str, str] | None = None,
    tag_kinds: tuple[str, ...] = ("colour",),
) -> list[ExperimentRow]:
    """Recall on ``split``'s queries with no tags, then with the ``top`` most frequent attributes
    tagged on every image (fraction 1.0) or a seeded share of images; then, where ``kinds`` (attribute
    name -> kind) is given, every attribute of each of ``tag_kinds`` tagged (the kind the queries
    change); then every attribute an image has (the most a tagger could add)."""
    queries, rows = g.queries[split].with_targets(), gallery_rows(g, split)
    ranked_attributes = attributes_by_frequency(truth, g.ids["Image"])
    n_images = len(g.ids["Image"])
    out = [ExperimentRow("predicted attributes", recall_at_k(_ranked(model, g, queries, rows), queries.target,
                                                             g.image_title))]

    def tagged_row(name: str, attributes: list[str], image_rows: list[int]) -> ExperimentRow:
        batch = tag_edges(g, truth, attributes, image_rows)
        ranked = _ranked(model, with_edges(g, batch), queries, rows)
        images = len({s for s in batch.edges.get(USER_TAGGED, ([], []))[0]})
        return ExperimentRow(name, recall_at_k(ranked, queries.target, g.image_title), batch.counts(), images,
                             attributes if len(attributes) <= 20 else [])

    for top in tops:
        for fraction in fractions:
            image_rows = list(range(n_images))
            if fraction < 1.0:
                image_rows = sorted(random.Random(seed).sample(image_rows, round(fraction * n_images)))
            share = "every image" if fraction >= 1.0 else f"{fraction:.0%} of images"
            out.append(tagged_row(f"top {top} tagged, {share}", ranked_attributes[:top], image_rows))
    for kind in tag_kinds if kinds else ():
        of_kind = [a for a in ranked_attributes if kinds.get(a) == kind]
        if of_kind:
            out.append(tagged_row(f"every {kind} tagged, every image", of_kind, list(range(n_images))))
    out.append(tagged_row("every attribute tagged, every image", ranked_attributes, list(range(n_images))))
    return out


@dataclass
class LikesResult:
    examples: int
    liked_per_example: int
    before: dict[str, float]
    after: dict[str, float]
    connection_accuracy_before: float
    connection_accuracy_after: float
    connected_queries: int  # queries with a liked image in their top 10 after the likes
    other_before: dict[str, float]  # the split's other queries: what the likes did to them
    other_after: dict[str, float]
    edges: dict[str, int]


def connection_accuracy(ranked: Tensor, liked: Tensor, k: int = 10) -> tuple[float, int]:
    """Of the queries with a liked image in their top ``k``, the percentage with another liked image in
    the top ``k`` too (the paper's connection accuracy); and how many queries had one."""
    top = ranked[:, :k]
    hits = (top[:, :, None] == liked[:, None, :]).any(dim=2).sum(dim=1)
    with_one = int((hits >= 1).sum())
    return (100.0 * int((hits >= 2).sum()) / with_one if with_one else 0.0), with_one


def likes(
    model: nn.Module,
    g: GraphTensors,
    examples: int = 1000,
    liked_per_example: int = 10,
    split: str = "test",
    seed: int = 0,
) -> LikesResult:
    """``examples`` queries of ``split``, each liking the images nearest to its target among the split's
    images (by the model's own image embeddings; the target and candidate left out)."""
    all_queries, rows = g.queries[split].with_targets(), gallery_rows(g, split)
    chosen = all_queries.with_targets(examples, seed)
    chosen_ids = set(chosen.ids)
    others = all_queries.subset([i for i, q in enumerate(all_queries.ids) if q not in chosen_ids])
    with torch.no_grad():
        model.eval()
        state = model.encode(g)
    liked = nearest_images(model.gallery(state, g), chosen.target, rows, liked_per_example, chosen.candidate)
    batch: EdgeBatch = like_edges(g, chosen, liked)
    g_after = with_edges(g, batch)
    # Each graph is encoded once; its scorer ranks both the liked queries and the others.
    score_before, score_after = retriever_scorer(model, g, state), retriever_scorer(model, g_after)
    before = rank_queries(score_before, chosen, rows, max(KS))
    after = rank_queries(score_after, chosen, rows, max(KS))
    conn_before, _ = connection_accuracy(before, liked)
    conn_after, connected = connection_accuracy(after, liked)
    return LikesResult(
        examples=len(chosen),
        liked_per_example=liked_per_example,
        before=recall_at_k(before, chosen.target, g.image_title),
        after=recall_at_k(after, chosen.target, g.image_title),
        connection_accuracy_before=conn_before,
        connection_accuracy_after=conn_after,
        connected_queries=connected,
        other_before=recall_at_k(rank_queries(score_before, others, rows, max(KS)), others.target, g.image_title),
        other_after=recall_at_k(rank_queries(score_after, others, rows, max(KS)), others.target, g.image_title),
        edges=batch.counts(),
    )


def _cells(r: dict[str, float]) -> str:
    return " | ".join(f"{r[f'id_R@{k}']:.1f}" for k in KS) + " | " + f"{r['cap_R@10']:.1f}"


def more_metadata_markdown(rows: list[ExperimentRow], info: str) -> str:
    lines = [info, "", "| run | id R@1 | id R@10 | id R@50 | cap R@10 | tag edges | images tagged |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.name} | {_cells(row.recall)} | {row.edges.get('USER_TAGGED', 0):,} | "
                     f"{row.images_tagged:,} |")
    lines += ["", "Paper (Fashion200K, R@1 / R@10 / R@50): "
              + "; ".join(f"{k} {a} / {b} / {c}" for k, (a, b, c) in PAPER_MORE_METADATA.items()) + "."]
    return "\n".join(lines) + "\n"


def likes_markdown(result: LikesResult, info: str) -> str:
    lines = [info, "", "| queries | id R@1 | id R@10 | id R@50 | cap R@10 | connection accuracy |",
             "|---|---:|---:|---:|---:|---:|",
             f"| {result.examples:,} liked, before | {_cells(result.before)} | "
             f"{result.connection_accuracy_before:.1f} |",
             f"| {result.examples:,} liked, after | {_cells(result.after)} | "
             f"{result.connection_accuracy_after:.1f} |",
             f"| other test queries, before | {_cells(result.other_before)} | |",
             f"| other test queries, after | {_cells(result.other_after)} | |",
             "", f"Edges added: {result.edges}; {result.connected_queries:,} queries had a liked image in "
             "their top 10 after the likes.",
             f"Paper (Fashion200K, 1,000 examples): R@1/10/50 {PAPER_LIKES['before']} -> {PAPER_LIKES['after']}, "
             f"connection accuracy {PAPER_LIKES['connection_accuracy']}%."]
    return "\n".join(lines) + "\n"


def plot_bars(labels: list[str], ours: list[float], paper: list[float | None], title: str, path: Path) -> None:
    """R@10 per run, this project's beside the paper's (where the paper has the row)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4.5))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], ours, width=0.4, label="tailor (myntra-small)")
    ax.bar([i + 0.2 for i in x], [p or 0 for p in paper], width=0.4, label="paper (Fashion200K)", alpha=0.7)
    for i, v in enumerate(ours):
        ax.text(i - 0.2, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(list(x), labels, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("exact-id R@10 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def write_more_metadata(rows: list[ExperimentRow], out: Path, info: str) -> None:
    atomic_write_json(out / "more_metadata.json", {"info": info, "rows": [asdict(r) for r in rows],
                                                    "paper": PAPER_MORE_METADATA})
    atomic_write(out / "more_metadata.md", more_metadata_markdown(rows, info))
    paper = {"predicted attributes": PAPER_MORE_METADATA["predicted attributes"][1],
             "top 5 tagged, every image": PAPER_MORE_METADATA["top 5 tagged"][1],
             "top 15 tagged, every image": PAPER_MORE_METADATA["top 15 tagged"][1]}
    plot_bars([r.name for r in rows], [r.recall["id_R@10"] for r in rows], [paper.get(r.name) for r in rows],
              "More metadata: tags added by people, no retraining", out / "more_metadata.png")


def write_likes(result: LikesResult, out: Path, info: str) -> None:
    atomic_write_json(out / "likes.json", {"info": info, **asdict(result), "paper": PAPER_LIKES})
    atomic_write(out / "likes.md", likes_markdown(result, info))
    plot_bars(["before likes", "after likes"], [result.before["id_R@10"], result.after["id_R@10"]],
              [PAPER_LIKES["before"][1], PAPER_LIKES["after"][1]],
              f"I like that: {result.examples:,} test queries, no retraining", out / "likes.png")
