"""Products the model never saw: does the daily catalog flow (load, then sync; no retraining) rank them as
well as a model retrained with them?

1. A share of the test split's *units* (product groups joined when they share an image or hold
   byte-identical photos: what the split assigns as one, see :mod:`readers.composed`) is held out
   entirely: the catalog is loaded without their products, so no image, query or attribute edge of
   theirs exists while the model trains (checked on the training graph).
2. The graph model trains on that graph and is published.
3. The whole catalog is loaded again (the new products and their composed queries are created, the rest
   is a no-op) and a sync brings them to the index: features, embeddings with the trained weights, FAISS
   rows, embeddings written back.
4. Queries among the new products are answered by the published engine (FAISS over the whole gallery,
   every image, candidate excluded), beside (a) the same model retrained on the whole graph, (b) the
   image-only baseline, both ranked over the same gallery, and (c) the queries of the test units that
   stayed (seen in the graph, never as queries).

The database must be empty (the experiment loads the catalog twice); the workspace's published engine is
the inductive model afterwards. Report: ``new_products.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from neo4j import Driver

from engine.errors import DataError
from engine.workspace import Workspace
from experiments.figures import pyplot, save_figure
from gnn.config import ExperimentConfig
from gnn.data.graph import GraphTensors, QuerySet
from gnn.training.evaluation import (
    KS,
    balanced_rows,
    gallery_rows,
    rank_queries,
    recall_at_k,
    retriever_scorer,
)
from readers.captions import CaptionRoles
from readers.composed import ComposedQueries, _UnionFind, hash_images
from readers.files import atomic_write, atomic_write_json
from readers.progress import StartPhase, no_progress
from readers.records import ImageRecord

Log = Callable[[str], None]
MODEL = "graph_catalog"


def split_units(queries: ComposedQueries, records: list[ImageRecord]) -> dict[str, str]:
    """Image id -> its split unit (the smallest group key in it), rebuilt from the saved queries as the
    split built them: groups that share an image, or hold byte-identical images, are one unit."""
    uf = _UnionFind()
    keys: dict[str, list[str]] = {}
    for q in queries.queries:
        for image_id in (q.candidate_id, q.target_id):
            if image_id is not None:
                keys.setdefault(image_id, [])
                if q.group not in keys[image_id]:
                    keys[image_id].append(q.group)
    for groups in keys.values():
        for g in groups[1:]:
            uf.union(groups[0], g)
    by_digest: dict[str, list[str]] = {}
    for image_id, digest in hash_images(records).items():
        if digest is not None and image_id in keys:
            by_digest.setdefault(digest, []).append(image_id)
    for same in by_digest.values():
        for other in same[1:]:
            uf.union(keys[same[0]][0], keys[other][0])
    return {image_id: uf.find(groups[0]) for image_id, groups in keys.items()}


def held_out_products(queries: ComposedQueries, records: list[ImageRecord], share: float, seed: int = 0
                      ) -> tuple[set[str], list[str]]:
    """(product ids, unit keys) of a seeded ``share`` of the test split's units."""
    units = split_units(queries, records)
    test_units = sorted({u for i, u in units.items() if queries.image_splits.get(i) == "test"})
    chosen = sorted(random.Random(seed).sample(test_units, max(1, round(share * len(test_units)))))
    wanted = set(chosen)
    return {i for i, u in units.items() if u in wanted}, chosen


@dataclass
class NewProductsReport:
    held_out: dict[str, Any] = field(default_factory=dict)  # units, products, queries
    timing: dict[str, Any] = field(default_factory=dict)  # the load + sync of the new products
    recall: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # set -> model -> metric
    counts: dict[str, int] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)  # the must-show ratios
    notes: list[str] = field(default_factory=list)


def _roles(export) -> dict[str, CaptionRoles]:
    by_caption = export.caption_roles()
    return {c: CaptionRoles(tuple(sorted(r.get("added", ()))), tuple(sorted(r.get("removed", ()))),
                            tuple(sorted(r.get("mentioned", ())))) for c, r in by_caption.items()}


def _engine_ranked(searcher: Any, g: GraphTensors, qs: QuerySet, texts: dict[str, str],
                   roles: dict[str, CaptionRoles], k: int, rerank: bool = False) -> torch.Tensor:
    """[q, k] gallery rows ranked by the published engine (FAISS over its whole index; ``rerank``: then its
    second stage, as `tailor query` answers)."""
    row = g.index["Image"]
    out = []
    for n, caption_id in enumerate(qs.ids):
        candidate = g.ids["Image"][int(qs.candidate[n])]
        hits = searcher.search(candidate, texts[caption_id], k, roles=roles.get(caption_id), rerank=rerank).hits
        if len(hits) < k:
            raise DataError(f"the index answered {len(hits)} results, fewer than {k}: too small a gallery")
        out.append([row[i] for i, _ in hits])
    return torch.tensor(out, dtype=torch.long) if out else torch.zeros((0, k), dtype=torch.long)


def _sets(qs: QuerySet, g: GraphTensors, new: set[str], per_group: int) -> dict[str, QuerySet]:
    known = qs.with_targets()
    images = g.ids["Image"]
    new_rows = [n for n in range(len(known)) if images[int(known.candidate[n])] in new]
    seen_rows = [n for n in range(len(known)) if images[int(known.candidate[n])] not in new]
    out = {}
    for name, rows in (("new products", new_rows), ("seen test groups", seen_rows)):
        sub = known.subset(rows)
        out[f"{name}: all"] = sub
        out[f"{name}: balanced"] = sub.subset(balanced_rows(sub.groups, per_group))
    return out


def run_new_products(driver: Driver, ws: Workspace, catalog: Path, split_file: Path, config: ExperimentConfig,
                     share: float = 0.5, seed: int = 0, log: Log = print,
                     start_phase: StartPhase | None = None) -> NewProductsReport:
    """The experiment of the module doc, on an empty database."""
    from engine.pipeline import fit, prepare, train_and_publish
    from engine.session import InteractiveSession
    from graphdb.catalog import image_count
    from graphdb.loaders import load_catalog
    from readers.catalog import read_catalog
    from readers.composed import load_or_build

    start = start_phase or no_progress
    if image_count(driver) != 0:
        raise DataError("the new-products experiment needs an empty database (it loads the catalog twice): "
                        "start one with `tailor db start --data-dir DIR` on other ports")
    report = NewProductsReport()
    records = list(read_catalog(catalog))
    queries = load_or_build(split_file, records)
    held, units = held_out_products(queries, records, share, seed)
    held_queries = [q for q in queries.queries if q.candidate_id in held or q.target_id in held]
    report.held_out = {"share_of_test_units": share, "units": len(units), "products": len(held),
                       "queries": len(held_queries), "seed": seed,
                       "test_units": len({u for i, u in split_units(queries, records).items()
                                          if queries.image_splits.get(i) == "test"})}
    log(f"holding out {len(units)} test units: {len(held):,} products, {len(held_queries):,} queries")

    load_catalog(driver, catalog, split_file, exclude=held, start_phase=start)
    trained = train_and_publish(driver, ws, MODEL, config, log, start)
    leaked = [i for i in trained.bundle.image_ids if i in held]
    if leaked:
        raise DataError(f"held-out products reached training: {leaked[:5]}")
    report.training["inductive"] = {"images": len(trained.bundle.image_ids), "version": trained.version}

    tick = time.perf_counter()
    loaded = load_catalog(driver, catalog, split_file, start_phase=start)
    load_seconds = time.perf_counter() - tick
    session = InteractiveSession(ws, driver)
    try:
        synced = session.sync(start_phase=start)
        total = time.perf_counter() - tick
        searcher = session.engine
        report.timing = {"products": len(loaded.new_images), "load_seconds": round(load_seconds, 2),
                         "sync_seconds": round(total - load_seconds, 2), "total_seconds": round(total, 2),
                         "sync": synced, "note": "features from the workspace cache where present (see "
                         "benchmarks/bench_catalog.py for the figure with featurising)"}
        missing = set(loaded.new_images) - set(searcher.bundle.image_ids)
        report.checks["new products not indexed"] = sorted(missing)

        prepared = prepare(driver, ws, config, log, start)  # the whole graph, features from the cache
        export = prepared.export
        texts = {c.id: c.text for c in export.captions}
        roles = _roles(export)
        from gnn.data.graph import build_graph_tensors
        from gnn.nn.baselines import ImageOnly
        from gnn.training.fit import model_config

        g = build_graph_tensors(export, prepared.features.arrays, model_config(MODEL, config).graph)
        rows = gallery_rows(g, None)
        sets = _sets(g.queries["test"], g, held, config.eval.per_group)
        retrained = fit(prepared, MODEL, config, ws, log, start, splits=("train", "test"))
        report.training["retrained"] = {"best_epoch": retrained.meta.get("best_epoch"),
                                        "reused_checkpoint": retrained.reused}
        scorers = {"inductive (tensors)": retriever_scorer(searcher.model, g),
                   "retrained with them": retriever_scorer(retrained.model, g),
                   "image only": retriever_scorer(ImageOnly(), g)}
        k = max(KS)
        for set_name, qs in sets.items():
            report.counts[set_name] = len(qs)
            report.recall[set_name] = {}
            ranked = _engine_ranked(searcher, g, qs, texts, roles, k)
            report.recall[set_name]["inductive (published engine)"] = recall_at_k(ranked, qs.target, g.image_title)
            if searcher.second_stage is not None:  # what `tailor query` answers: the same, re-ranked by the facts
                ranked = _engine_ranked(searcher, g, qs, texts, roles, k, rerank=True)
                report.recall[set_name]["inductive + second stage"] = recall_at_k(ranked, qs.target, g.image_title)
            for name, score in scorers.items():
                report.recall[set_name][name] = recall_at_k(rank_queries(score, qs, rows, k), qs.target,
                                                            g.image_title)
            r = report.recall[set_name]
            log(f"{set_name} ({len(qs):,}): " + ", ".join(f"{m} {v['id_R@10']:.1f}" for m, v in r.items()))
        report.counts["gallery"] = len(rows)
    finally:
        session.close()
    new = report.recall["new products: all"]
    engine_r10 = new["inductive (published engine)"]["id_R@10"]
    report.checks.update({
        "new products id_R@10: published engine": engine_r10,
        "new products id_R@10: retrained": new["retrained with them"]["id_R@10"],
        "new products id_R@10: image only": new["image only"]["id_R@10"],
        "ratio to retrained (>= 0.9)": round(engine_r10 / max(new["retrained with them"]["id_R@10"], 1e-9), 3),
        "points over image only (>= 20)": round(engine_r10 - new["image only"]["id_R@10"], 1),
    })
    return report


def markdown(report: NewProductsReport) -> str:
    h = report.held_out
    lines = [f"Held out: {h['units']} of {h['test_units']} test units ({h['products']:,} products, "
             f"{h['queries']:,} queries), seed {h['seed']}; gallery: every image ({report.counts.get('gallery', 0):,}), "
             "candidate excluded.", "",
             "| queries | model | id R@1 | id R@10 | id R@50 | cap R@10 |", "|---|---|---:|---:|---:|---:|"]
    for set_name, models in report.recall.items():
        for name, r in models.items():
            lines.append(f"| {set_name} ({report.counts[set_name]:,}) | {name} | {r['id_R@1']:.1f} | "
                         f"{r['id_R@10']:.1f} | {r['id_R@50']:.1f} | {r['cap_R@10']:.1f} |")
    t = report.timing
    if t:
        lines += ["", f"Load + sync of the {t['products']:,} new products: {t['total_seconds']:.1f} s "
                  f"(load {t['load_seconds']:.1f} s, sync {t['sync_seconds']:.1f} s; {t['note']})."]
    lines += ["", "Checks: " + "; ".join(f"{k}: {v}" for k, v in report.checks.items() if not isinstance(v, list))]
    return "\n".join(lines) + "\n"


def plot(report: NewProductsReport, path: Path) -> None:
    plt = pyplot()
    sets = [s for s in report.recall if s.endswith(": all")] + [s for s in report.recall if s.endswith("balanced")]
    models = list(next(iter(report.recall.values())))
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4.5), sharey=True)
    for ax, set_name in zip(axes, sets, strict=True):
        width = 0.8 / len(models)
        for m, name in enumerate(models):
            values = [report.recall[set_name][name][f"id_R@{k}"] for k in KS]
            ax.bar([x + m * width for x in range(len(KS))], values, width, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(KS))], [f"R@{k}" for k in KS])
        ax.set_title(f"{set_name} ({report.counts[set_name]:,})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("exact-id recall (%), whole gallery")
    axes[-1].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


def write_report(report: NewProductsReport, out: Path) -> None:
    atomic_write_json(out / "new_products.json", asdict(report))
    atomic_write(out / "new_products.md", markdown(report))
    plot(report, out / "new_products.png")
