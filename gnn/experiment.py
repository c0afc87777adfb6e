"""The recall table: every model on the same test queries, trained with the same budget.

Models: ``image_only``, ``tirg``, ``composeae`` (no graph), ``oracle`` (the ceiling),
``graph_catalog`` / ``graph_predicted`` / ``graph_caption`` (the R-GCN with HAS_ATTRIBUTE edges of that
source). A learned model is reused from a checkpoint made with the same config and data, else trained.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from gnn.baselines import TIRG, AttributeOracle, ComposeAE, ImageOnly
from gnn.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from gnn.config import ExperimentConfig
from gnn.evaluation import KS, balanced_rows, gallery_rows, rank_queries, recall_at_k, write_json_atomic
from gnn.graph import GraphTensors, QuerySet, build_graph_tensors
from gnn.inference import retriever_scorer
from gnn.model import GraphRetriever
from gnn.simulation import TruthMap, training_interactions
from gnn.train import train_retriever
from graphdb.export import GraphExport

ALL_MODELS = ("image_only", "tirg", "composeae", "oracle", "graph_catalog", "graph_predicted")
GRAPH_SOURCES = {"graph_catalog": "catalog", "graph_predicted": "predicted", "graph_caption": "caption"}
LEARNED = {"tirg", "composeae", *GRAPH_SOURCES}
Log = Callable[[str], None]


def model_config(name: str, base: ExperimentConfig) -> ExperimentConfig:
    """The config a model trains with: the base, with the graph model's attribute source set."""
    if name in GRAPH_SOURCES:
        graph = dataclasses.replace(base.graph, attribute_sources=(GRAPH_SOURCES[name],))
        return dataclasses.replace(base, graph=graph)
    return base


def make_model(name: str, g: GraphTensors, config: ExperimentConfig) -> nn.Module:
    dims = {k: v.shape[1] for k, v in g.features.items()}
    m = config.model
    if name in GRAPH_SOURCES:
        return GraphRetriever(dims, g.relations, m)
    if name == "tirg":
        return TIRG(dims["Image"], dims["Caption"], m.hidden, m.dropout)
    if name == "composeae":
        return ComposeAE(dims["Image"], dims["Caption"], m.hidden, m.dropout)
    raise ValueError(f"{name!r} is not a learned model")


def data_fingerprint(g: GraphTensors) -> dict:
    """What a checkpoint's data must match to be reused: sizes, relation counts, feature checksums."""
    return {
        "nodes": {k: len(v) for k, v in g.ids.items()},
        "relations": g.relation_counts(),
        "queries": {k: len(v) for k, v in g.queries.items()},
        "features": {k: round(float(v.double().sum()), 3) for k, v in g.features.items()},
        "ids": fingerprint(g.ids["Image"][:1000], g.ids["Caption"][:1000]),
    }


@dataclass
class ModelRun:
    name: str
    model: nn.Module | None
    graph: GraphTensors
    meta: dict = field(default_factory=dict)  # data fingerprint, best epoch, training history
    reused: bool = False
    checkpoint: Path | None = None
    seconds: float = 0.0


def fit_model(
    name: str,
    g: GraphTensors,
    config: ExperimentConfig,
    checkpoints: Path,
    log: Log = print,
    show_progress: bool = True,
    truth: TruthMap | None = None,
) -> ModelRun:
    """Train, or reuse a checkpoint made with the same config and data.

    Graph models train with simulated interactions (``config.simulation``) built from ``truth``, the
    catalog attributes of each image; the returned run's graph is ``g`` itself, without them.
    """
    data = data_fingerprint(g)
    simulate = name in GRAPH_SOURCES and config.simulation.enabled
    config_key = config.to_dict()
    if name not in GRAPH_SOURCES:  # baselines have no interaction relations: their checkpoints stay valid
        config_key.pop("simulation")
    key = fingerprint(name, config_key, data)
    path = checkpoints / f"{name}-{key}.pt"
    model = make_model(name, g, config)
    if path.exists():
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt.state_dict)
        model.eval()
        log(f"{name}: reusing {path.name} (best epoch {ckpt.meta.get('best_epoch')})")
        return ModelRun(name, model, g, ckpt.meta, reused=True, checkpoint=path)
    start = time.perf_counter()
    train_graph, liked, simulated = g, None, {}
    if simulate:
        if truth is None:
            raise ValueError(f"{name}: simulated interactions need the catalog attributes (truth)")
        sim = training_interactions(g, truth, config.simulation)
        train_graph, liked = sim.graph, sim.liked_queries
        simulated = {"edges": sim.counts, "tagged_attributes": sim.tagged_attributes,
                     "liked_queries": len(liked) if liked is not None else 0}
        shown = ", ".join(sim.tagged_attributes[:10]) + (" ..." if len(sim.tagged_attributes) > 10 else "")
        log(f"{name}: simulated interactions {sim.counts}; {len(sim.tagged_attributes)} attributes tagged ({shown})")
    result = train_retriever(
        model,
        train_graph,
        config.train,
        show_progress=show_progress,
        on_epoch=lambda e: log(
            f"{name} epoch {e.epoch}: loss {e.loss:.3f} "
            f"train id_R@10 {e.train_id_r10:.1f} val id_R@10 "
            f"{e.val_id_r10:.1f} ({e.seconds:.1f} s)"
        ),
        extra=liked,
        extra_per_batch=config.simulation.liked_per_batch,
    )
    meta = {
        "data": data,
        "simulated": simulated,
        "best_epoch": result.best_epoch,
        "best_val_id_r10": result.best_val_id_r10,
        "history": [dataclasses.asdict(h) for h in result.history],
    }
    save_checkpoint(
        path, model, name, config, g.relations, g.ids, {k: v.shape[1] for k, v in g.features.items()}, meta
    )
    return ModelRun(name, model, g, meta, checkpoint=path, seconds=time.perf_counter() - start)


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


def evaluate_models(
    export: GraphExport,
    features: dict[str, np.ndarray],
    base: ExperimentConfig,
    models: tuple[str, ...],
    checkpoints: Path,
    split: str = "test",
    per_group: int = 20,
    log: Log = print,
    show_progress: bool = True,
) -> Report:
    report = Report()
    graphs: dict[str, GraphTensors] = {}
    oracle_truth = export.image_attributes(("catalog",))
    oracle = AttributeOracle(oracle_truth, export.caption_roles())
    for name in models:
        config = model_config(name, base)
        key = fingerprint(config.graph.__dict__)
        if key not in graphs:
            graphs[key] = build_graph_tensors(export, features, config.graph)
        g = graphs[key]
        if name in LEARNED:
            run = fit_model(name, g, config, checkpoints, log, show_progress, truth=oracle_truth)
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
        score = scorer_for(run, oracle)
        qs: QuerySet = g.queries[split]
        known = qs.with_targets()
        sets = {"all": known, "balanced": known.subset(balanced_rows(known.groups, per_group))}
        rows = gallery_rows(g, split)
        report.recall[name], report.curves[name] = {}, {}
        for set_name, q in sets.items():
            ranked = rank_queries(score, q, rows, max(KS))
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
    return report


def markdown_table(report: Report) -> str:
    lines = [
        f"Test queries: all {report.counts.get('all', 0):,}, group-balanced {report.counts.get('balanced', 0):,} "
        f"(at most 20 a group); gallery {report.counts.get('gallery', 0):,} test images, candidate excluded.",
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: Report, out: Path) -> None:
    write_json_atomic(out / "recall.json", report.recall)
    write_json_atomic(out / "training.json", {"training": report.training, "counts": report.counts})
    (out / "recall.md").write_text(markdown_table(report))
    plot_curves(report, out / "recall.png")

