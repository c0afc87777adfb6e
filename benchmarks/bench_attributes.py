"""Attribute classifier (gnn.attributes.predictor): top-1 accuracy per kind on held-out images and the paper's Table 5
(predicted edges by threshold), over several seeds. Read-only: it writes nothing to the graph.

Not a test: run it by hand::

    TAILOR_HOME=/tmp/th1 python benchmarks/bench_attributes.py              # the graph of that workspace
    python benchmarks/bench_attributes.py --seeds 0,1,2 --hidden 0,512      # linear heads vs the MLP
    python benchmarks/bench_attributes.py --synthetic                       # no server: centroids + noise

With a graph, images, splits and catalog attributes come from Neo4j (as `tailor attributes train` reads
them) and features from the workspace's feature cache (run `tailor featurize` first, or wait a while).
Accuracy is measured on the test split only; the Table 5 rows are for the test images (edges, edges per
image, precision and recall against their catalog attributes) and for all images (edge counts, as
`tailor attributes predict` would write them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gnn.attributes.predictor import (  # noqa: E402
    DEFAULT_THRESHOLDS,
    AttributeConfig,
    evaluate_attributes,
    fit_attributes,
    threshold_table,
)

console = Console(width=120)  # wide enough for the Table 5 columns when piped


def synthetic_data(n: int = 6000, dim: int = 256, seed: int = 0):
    """Seven kinds like myntra's, one value per image each; features = centroid sum + noise."""
    from engine.attributes import AttributeData

    rng = np.random.default_rng(seed)
    kinds = {
        "colour": 40,
        "article_type": 70,
        "gender": 5,
        "usage": 6,
        "season": 4,
        "master_category": 6,
        "sub_category": 30,
    }
    centroids = {k: rng.normal(size=(v, dim)) for k, v in kinds.items()}
    labels, feats = [], np.zeros((n, dim), np.float32)
    for i in range(n):
        lab = {k: int(rng.zipf(1.6) - 1) % v for k, v in kinds.items()}  # skewed, as catalogs are
        x = sum(centroids[k][j] for k, j in lab.items()) + 2.5 * rng.normal(size=dim)
        feats[i] = x / np.linalg.norm(x)
        labels.append({k: {f"{k}-{j}"} for k, j in lab.items()})
    splits = list(rng.choice(["train", "val", "test"], size=n, p=[0.79, 0.06, 0.15]))
    names = [set().union(*lab.values()) for lab in labels]
    return AttributeData([f"s{i}" for i in range(n)], splits, feats, labels, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--hidden", default="512", help="comma-separated hidden widths (0: linear heads)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--thresholds", default=",".join(str(t) for t in DEFAULT_THRESHOLDS))
    parser.add_argument("--synthetic", action="store_true", help="no server: synthetic features")
    parser.add_argument("--cnn-only", action="store_true",
                        help="the predictor before pixel colour: CNN features, uncalibrated, one stopping epoch")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]

    if args.synthetic:
        data = synthetic_data()
        source = "synthetic"
    else:
        from cli.db import connect
        from engine.attributes import input_features, read_attribute_data
        from engine.workspace import Workspace

        with connect(None, None, None) as driver:
            data = read_attribute_data(driver, Workspace.default(), "efficientnet-lite0", not args.cnn_only)
        data.features, _ = input_features(data, not args.cnn_only)
        source = "graph"
    count = {s: data.splits.count(s) for s in ("train", "val", "test")}
    console.print(f"{source}: {len(data.ids):,} images ({count}), features {data.features.shape[1]}-d")
    test = [i for i, s in enumerate(data.splits) if s == "test"]

    for hidden in (int(h) for h in args.hidden.split(",")):
        per_kind: dict[str, list[float]] = {}
        info: dict[str, tuple[str, int, int, float]] = {}
        tables_test, tables_all, epochs, secs = [], [], [], []
        for seed in seeds:
            old = {"pixel_colour": False, "calibrate": False, "per_kind_stopping": False} if args.cnn_only else {}
            config = AttributeConfig(hidden=hidden, epochs=args.epochs, seed=seed, **old)
            start = time.perf_counter()
            model = fit_attributes(data.features, data.splits, data.labels, config)
            elapsed = time.perf_counter() - start
            epochs.append(model.meta["best_epoch"])
            secs.append(elapsed / max(1, len(model.meta["history"])))
            for r in evaluate_attributes(model, data.features, data.splits, data.labels, "test"):
                per_kind.setdefault(r.kind, []).append(r.accuracy)
                info[r.kind] = (r.mode, r.classes, r.images, r.majority_accuracy)
            known = {name for kv in model.vocab for name in kv.values}
            low = min(thresholds)
            preds_test = model.predict(data.features[test], min_confidence=low)
            tables_test.append(threshold_table(preds_test, thresholds, [data.names[i] for i in test], known))
            tables_all.append(threshold_table(model.predict(data.features, min_confidence=low), thresholds))

        title = (
            f"hidden={hidden}: top-1 accuracy on {len(test):,} test images, mean ± sd over seeds {seeds} "
            f"(best epoch {statistics.mean(epochs):.0f}, {statistics.mean(secs):.2f} s/epoch)"
        )
        table = Table(title=title)
        for col in ("kind", "head", "values", "images", "accuracy", "majority"):
            table.add_column(col, justify="left" if col in ("kind", "head") else "right")
        for kind, accs in per_kind.items():
            mode, classes, images, majority = info[kind]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            table.add_row(
                kind,
                mode,
                str(classes),
                f"{images:,}",
                f"{100 * statistics.mean(accs):.1f} ± {100 * sd:.1f}%",
                f"{100 * majority:.1f}%",
            )
        mean = statistics.mean(statistics.mean(a) for a in per_kind.values())
        table.add_row("mean", "", "", "", f"{100 * mean:.1f}%", "")
        console.print(table)

        table = Table(title=f"hidden={hidden}: Table 5, predicted edges by threshold (mean over seeds)")
        for col in (
            "threshold",
            "test edges",
            "test edges/image",
            "precision",
            "recall",
            "all edges",
            "all edges/image",
        ):
            table.add_column(col, justify="right")
        for j, t in enumerate(thresholds):
            rows_t = [tab[j] for tab in tables_test]
            rows_a = [tab[j] for tab in tables_all]
            table.add_row(
                f"{t:.2f}",
                f"{statistics.mean(r.edges for r in rows_t):,.0f}",
                f"{statistics.mean(r.per_image for r in rows_t):.2f}",
                f"{100 * statistics.mean(r.precision or 0.0 for r in rows_t):.1f}%",
                f"{100 * statistics.mean(r.recall or 0.0 for r in rows_t):.1f}%",
                f"{statistics.mean(r.edges for r in rows_a):,.0f}",
                f"{statistics.mean(r.per_image for r in rows_a):.2f}",
            )
        console.print(table)


if __name__ == "__main__":
    main()
