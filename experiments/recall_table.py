"""The recall table: every model on the same test queries, trained with the same budget.

Models: ``image_only``, ``tirg``, ``composeae`` (no graph), ``oracle`` (the faceted filter),
``graph_catalog`` / ``graph_predicted`` / ``graph_caption`` (see :mod:`gnn.training.fit`), and the two-stage
rows (:data:`TWO_STAGE`): a graph model's top candidates re-ranked by the second stage (:mod:`gnn.ranking`)
over the facts of the same attribute source, with the ablations (embedding features only, facts only). A
learned model or ranker is reused from a checkpoint made with the same config and data, else trained. The
report is JSON, Markdown and a plot of recall@K.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.figures import pyplot, save_figure
from gnn.checkpoint import fingerprint, load_checkpoint
from gnn.config import ExperimentConfig
from gnn.data.graph import GraphTensors, QuerySet, build_graph_tensors
from gnn.nn.baselines import AttributeOracle, ImageOnly
from gnn.ranking.facts import EMBEDDING, FACTS, GROUPS, INTERACTIONS, FactTable, fact_sources
from gnn.ranking.model import LinearRanker
from gnn.ranking.train import fit_ranker, ranker_kinds, two_stage_ranked
from gnn.training.evaluation import (
    KS,
    balanced_rows,
    gallery_rows,
    rank_queries,
    recall_at_k,
    retriever_scorer,
)
from gnn.training.fit import LEARNED, ModelRun, fit_model, model_config
from readers.files import atomic_write, atomic_write_json
from readers.graph_records import GraphExport
from readers.progress import StartPhase

# Two-stage rows: name -> (the stage-one graph model, the ranker's feature groups).
TWO_STAGE: dict[str, tuple[str, tuple[str, ...]]] = {
    "two_stage_catalog": ("graph_catalog", GROUPS),
    "two_stage_predicted": ("graph_predicted", GROUPS),
    "two_stage_catalog_embedding_only": ("graph_catalog", (EMBEDDING,)),
    "two_stage_catalog_facts_only": ("graph_catalog", (FACTS, INTERACTIONS)),
}
ALL_MODELS = ("image_only", "tirg", "composeae", "oracle", "graph_catalog", "graph_predicted", *TWO_STAGE)
Log = Callable[[str], None]


def scorer_for(run: ModelRun, oracle: AttributeOracle | None = None):
    if run.name == "oracle":
        assert oracle is not None
        return lambda cand, cap, rows: oracle.scores(run.graph, cand, cap, rows)
    if run.name == "image_only":
        return retriever_scorer(ImageOnly(), run.graph)
    return retriever_scorer(run.model, run.graph)


@dataclass
class Report:
    recall: dict = field(default_factory=dict)  # model -> query set -> metric -> value
    curves: dict = field(default_factory=dict)  # model -> query set -> [R@1..R@50] (caption match)
    training: dict = field(default_factory=dict)  # model -> epochs, seconds/epoch, train/val gap
    counts: dict = field(default_factory=dict)
    rankers: dict = field(default_factory=dict)  # two-stage row -> weights, best epoch, lists


def evaluate_models(
    export: GraphExport,
    features: dict[str, np.ndarray],
    base: ExperimentConfig,
    models: tuple[str, ...],
    checkpoints: Path,
    log: Log = print,
    start_phase: StartPhase | None = None,
    encode_texts: Callable | None = None,
) -> Report:
    """Every model in ``models`` on the test queries of ``base.eval`` (all of them, and the group-balanced
    set), each trained with ``base``'s budget or reused from its checkpoint."""
    split, per_group = base.eval.split, base.eval.per_group
    report = Report()
    graphs: dict[str, GraphTensors] = {}
    oracle_truth = export.image_attributes(("catalog",))
    oracle = AttributeOracle(oracle_truth, export.caption_roles())
    runs: dict[str, ModelRun] = {}
    roles = export.caption_roles()
    for name in models:
        stage_one_name = TWO_STAGE[name][0] if name in TWO_STAGE else name
        config = model_config(stage_one_name, base)
        key = fingerprint(config.graph.__dict__)
        if key not in graphs:
            graphs[key] = build_graph_tensors(export, features, config.graph)
        g = graphs[key]
        if name in TWO_STAGE:
            if stage_one_name not in runs:
                runs[stage_one_name] = fit_model(stage_one_name, g, config, checkpoints, log, start_phase,
                                                 truth=oracle_truth, encode_texts=encode_texts)
            run = runs[stage_one_name]
            ranked_fn = _two_stage(name, run, export, config, roles, checkpoints, report, log, start_phase)
        elif name in LEARNED:
            run = runs[name] = fit_model(name, g, config, checkpoints, log, start_phase, truth=oracle_truth,
                                         encode_texts=encode_texts)
            meta = run.meta
            hist = meta.get("history", [])
            best = next((h for h in hist if h["epoch"] == meta["best_epoch"]), {})
            report.training[name] = {
                "best_epoch": meta["best_epoch"],
                "epochs_run": len(hist),
                "seconds_per_epoch": float(np.median([h["seconds"] for h in hist])) if hist else None,
                "train_id_R@10": best.get("train_id_r10"),
                "val_id_R@10": best.get("val_id_r10"),
                "reused_checkpoint": run.reused,
            }
        else:
            run = ModelRun(name, None, g)
        rows = gallery_rows(g, split)
        if name not in TWO_STAGE:
            ranked_fn = _one_stage(scorer_for(run, oracle), rows)
        qs: QuerySet = g.queries[split]
        known = qs.with_targets()
        sets = {"all": known, "balanced": known.subset(balanced_rows(known.groups, per_group))}
        report.recall[name], report.curves[name] = {}, {}
        for set_name, q in sets.items():
            ranked = ranked_fn(q)
            report.recall[name][set_name] = recall_at_k(ranked, q.target, g.image_title, KS)
            curve = recall_at_k(ranked, q.target, g.image_title, range(1, max(KS) + 1))
            report.curves[name][set_name] = {
                "id": [curve[f"id_R@{k}"] for k in range(1, max(KS) + 1)],
                "cap": [curve[f"cap_R@{k}"] for k in range(1, max(KS) + 1)],
            }
            report.counts[set_name] = len(q)
        r = report.recall[name]
        log(
            f"{name}: all id_R@10 {r['all']['id_R@10']:.1f} cap_R@10 {r['all']['cap_R@10']:.1f} | "
            f"balanced id_R@10 {r['balanced']['id_R@10']:.1f}"
        )
        report.counts["gallery"] = len(rows)
        report.counts["per_group"] = per_group
    return report


def _one_stage(score, rows):
    return lambda q: rank_queries(score, q, rows, max(KS))


def _two_stage(name: str, run: ModelRun, export: GraphExport, config: ExperimentConfig, roles: dict,
               checkpoints: Path, report: Report, log: Log, start_phase: StartPhase | None):
    """The two-stage row ``name``: its ranker (trained on training queries, or reused) over the facts of
    the stage-one model's attribute source; returns query set -> ranked gallery rows."""
    groups = TWO_STAGE[name][1]
    ranker_config = dataclasses.replace(config.ranker, groups=groups)
    sources = fact_sources(ranker_config, config.graph)
    facts = FactTable.from_export(export, sources, tags=ranker_config.tags)
    assert run.model is not None and run.checkpoint is not None
    score = retriever_scorer(run.model, run.graph)
    if ranker_config.enabled:
        version = load_checkpoint(run.checkpoint).version
        ranker, reused = fit_ranker(name, version, facts, sources, run.graph, score, roles, ranker_config,
                                    checkpoints, log, start_phase)
    else:  # second stage off: stage one's lists as they are, nothing to train
        ranker, reused = LinearRanker.for_kinds(ranker_config, ranker_kinds(facts)), False
    report.rankers[name] = {"stage_one": run.name, "sources": list(sources), "groups": list(groups),
                            "candidates": ranker_config.candidates, "best_epoch": ranker.meta.get("best_epoch"),
                            "counts": ranker.meta.get("counts", {}), "reused": reused,
                            "weights": dict(zip(ranker.names, (round(float(w), 4) for w in ranker.weights),
                                                strict=True))}
    split = config.eval.split
    return lambda q: two_stage_ranked(ranker, facts, run.graph, score, q, split, roles)


def markdown_table(report: Report) -> str:
    lines = [
        f"Test queries: all {report.counts.get('all', 0):,}, group-balanced {report.counts.get('balanced', 0):,} "
        f"(at most {report.counts.get('per_group', '?')} a group); gallery {report.counts.get('gallery', 0):,} test images, candidate excluded.",
        "",
        "| model | set | id R@1 | id R@10 | id R@50 | cap R@1 | cap R@10 | cap R@50 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sets in report.recall.items():
        for set_name, r in sets.items():
            cells = [f"{r[f'{m}_R@{k}']:.1f}" for m in ("id", "cap") for k in KS]
            lines.append(f"| {name} | {set_name} | " + " | ".join(cells) + " |")
    if report.training:
        lines += [
            "",
            "| model | best epoch | epochs run | s/epoch | train id R@10 | val id R@10 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, t in report.training.items():
            spe = f"{t['seconds_per_epoch']:.1f}" if t["seconds_per_epoch"] else "-"
            lines.append(
                f"| {name} | {t['best_epoch']} | {t['epochs_run']} | {spe} | "
                f"{t['train_id_R@10'] or 0:.1f} | {t['val_id_R@10'] or 0:.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot_curves(report: Report, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    panels = (
        ("all", "id", "exact id, all test queries"),
        ("balanced", "id", "exact id, group-balanced"),
        ("all", "cap", "caption match, all test queries"),
    )
    ks = list(range(1, max(KS) + 1))
    for ax, (set_name, metric, title) in zip(axes, panels, strict=True):
        for name, sets in report.curves.items():
            ax.plot(ks, sets[set_name][metric], label=name, linestyle="--" if name == "oracle" else "-")
        ax.set_title(title)
        ax.set_xlabel("K")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall@K (%)")
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_two_stage(report: Report, path: Path) -> None:
    """Bars of exact-id R@1 and R@10 (all test queries and the balanced set) for every row, the two-stage
    ones marked, and the learned weights of each two-stage ranker."""
    plt = pyplot()
    names = list(report.recall)
    fig, axes = plt.subplots(1, 3, figsize=(18, 0.45 * len(names) + 2.5),
                             gridspec_kw={"width_ratios": [1, 1, 1.1]})
    for ax, set_name in zip(axes[:2], ("all", "balanced"), strict=True):
        y = np.arange(len(names))
        r1 = [report.recall[n][set_name]["id_R@1"] for n in names]
        r10 = [report.recall[n][set_name]["id_R@10"] for n in names]
        ax.barh(y + 0.2, r10, height=0.4, label="id R@10", color="#4c72b0")
        ax.barh(y - 0.2, r1, height=0.4, label="id R@1", color="#dd8452")
        for yy, v in zip(y, r10, strict=True):
            ax.text(v + 0.5, yy + 0.2, f"{v:.1f}", va="center", fontsize=7)
        ax.set_yticks(y, [("* " if n in TWO_STAGE else "") + n for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_title(f"exact id, {'all test queries' if set_name == 'all' else 'group-balanced'}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    ax = axes[2]
    shown = [n for n in report.rankers if report.rankers[n].get("weights")]
    features = list(dict.fromkeys(f for n in shown for f in report.rankers[n]["weights"]))
    for i, n in enumerate(shown):
        w = report.rankers[n]["weights"]
        ax.barh(np.arange(len(features)) + (i - (len(shown) - 1) / 2) * 0.8 / max(1, len(shown)),
                [w.get(f, 0.0) for f in features], height=0.8 / max(1, len(shown)), label=n)
    ax.set_yticks(np.arange(len(features)), features, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_title("learned weights (raw scale)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def write_report(report: Report, out: Path) -> None:
    atomic_write_json(out / "recall.json", report.recall)
    atomic_write_json(out / "training.json", {"training": report.training, "counts": report.counts,
                                               "rankers": report.rankers})
    atomic_write(out / "recall.md", markdown_table(report))
    plot_curves(report, out / "recall.png")
    if report.rankers:
        plot_two_stage(report, out / "two_stage.png")

