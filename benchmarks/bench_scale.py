"""How tailor's costs grow with the catalog: one command, every size, the figures and their plots.

Not a test: run it by hand, on a machine doing little else (it says how loaded the machine was)::

    python benchmarks/bench_scale.py --sizes 10k,100k,1m --out out/scale

Per catalog size (a generated catalog with myntra-small's structure, ``benchmarks/scale/generate.py``),
in a process of its own, on a local Neo4j of its own (``TAILOR_NEO4J_HEAP``, ``TAILOR_NEO4J_PAGECACHE``;
``TAILOR_IMPORT_MEMORY`` for the importer), it prints:

- first load: relationships/s of the bulk load into an empty database (end to end, and the importer alone);
- training: seconds per epoch with neighbour sampling (and full-graph where ``--full-train-max`` allows),
  peak memory; from ``--max-steps-from`` on, ``--max-steps`` batches an epoch are trained and timed and the
  epoch's time is extrapolated from them (an epoch at a million products takes hours on 2 cores);
- search: p50/p95 of one query and recall@10 against exact search, for FAISS flat, IVF and HNSW and for
  Neo4j's vector index;
- like and tag: p50/p95 from the call to the changed ranking, and the local refresh's error against a full
  recomputation.

``benchmarks/scale/measure.py`` says how each is measured. Results go to ``OUT/<size>/result.json``,
``OUT/results.json`` and ``OUT/scale.png``. Needs myntra-small (``TAILOR_DATASETS``) and its feature cache
(``--features``, default ``$TAILOR_HOME/features``: the EfficientNet and MiniLM features of its images,
captions and attributes, as ``tailor featurize`` leaves them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scale.generate import parse_size  # noqa: E402


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def one(args: argparse.Namespace) -> None:
    from benchmarks.scale.measure import SizeRun, run_size, write_json

    n = parse_size(args.one)
    out = args.out / _label(n)
    run = SizeRun(n, out, args.features, args.catalog, args.split_file, epochs=args.epochs,
                  load_method=args.load_method, full_train_max=parse_size(args.full_train_max), queries=args.queries,
                  rounds=args.rounds, neo4j_vector=n <= parse_size(args.neo4j_vector_max),
                  layer_dtype="float16" if n >= parse_size(args.float16_from) else "float32", seed=args.seed,
                  max_steps=args.max_steps if n >= parse_size(args.max_steps_from) else None)
    if args.rerun_first_load or args.rerun_interactions:
        from benchmarks.scale.measure import rerun_first_load, rerun_interactions

        log = lambda line: print(line, flush=True)  # noqa: E731
        if args.rerun_first_load:
            write_json(out / "result.json", rerun_first_load(run, log=log))
        if args.rerun_interactions:
            write_json(out / "result.json", rerun_interactions(run, log=log))
        return
    try:
        run_size(run, log=lambda line: print(line, flush=True))
    except BaseException as err:  # what was measured before the failure is kept, with the failure
        run.result["failed"] = f"{type(err).__name__}: {err}"[:2000]
        raise
    finally:
        write_json(out / "result.json", run.result)


def _wide_hnsw(r: dict) -> dict:
    """The HNSW index searched with four times its candidates (``hnsw_ef<N>``), or dashes."""
    found = [v for k, v in r.get("search", {}).items() if k.startswith("hnsw_ef")]
    return found[0] if found else {"p50_ms": "-", "p95_ms": "-", "recall@10_vs_exact": "-"}


def table(results: list[dict]) -> str:
    def get(r, *path, default="-"):
        for p in path:
            if not isinstance(r, dict) or p not in r:
                return default
            r = r[p]
        return r

    rows = [
        ("first load relationships/s", lambda r: f"{get(r, 'first_load', 'relationships_per_s'):,}"),
        ("  the importer alone", lambda r: f"{get(r, 'first_load', 'import_relationships_per_s', default=0):,}"),
        ("  relationships", lambda r: f"{get(r, 'first_load', 'relationships'):,}"),
        ("training s/epoch (neighbour)", lambda r: get(r, "train_neighbour", "seconds_per_epoch")),
        ("  batches timed (of an epoch's)", lambda r: f"{get(r, 'train_neighbour', 'steps')} / "
                                                      f"{get(r, 'train_neighbour', 'steps_per_epoch')}"),
        ("  of which validation s", lambda r: get(r, "train_neighbour", "validation_seconds")),
        ("  peak memory MB (Python)", lambda r: get(r, "train_neighbour", "peak_python_mb")),
        ("  CPU s of the whole fit (this process)", lambda r: get(r, "train_neighbour", "cpu_seconds")),
        ("training s/epoch (full graph)", lambda r: get(r, "train_full", "seconds_per_epoch")),
        ("  peak memory MB (Python)", lambda r: get(r, "train_full", "peak_python_mb")),
        ("peak memory MB Neo4j JVM", lambda r: max(get(r, k, "peak_neo4j_mb", default=0) for k in
                                                     ("first_load", "export", "search", "interactions"))),
        *[(f"search {kind} p50 / p95 ms", lambda r, k=kind: f"{get(r, 'search', k, 'p50_ms')} / {get(r, 'search', k, 'p95_ms')}")
          for kind in ("flat", "ivf", "hnsw", "neo4j_vector")],
        *[(f"  {kind} recall@10 vs exact", lambda r, k=kind: get(r, "search", k, "recall@10_vs_exact"))
          for kind in ("ivf", "hnsw", "neo4j_vector")],
        ("search hnsw, 4x candidates p50 / p95 ms",
         lambda r: "{p50_ms} / {p95_ms}".format(**_wide_hnsw(r))),
        ("  hnsw, 4x candidates recall@10 vs exact", lambda r: _wide_hnsw(r)["recall@10_vs_exact"]),
        ("search neo4j_vector k=100 p50 / p95 ms",
         lambda r: f"{get(r, 'search', 'neo4j_vector', 'p50_ms_k100')} / {get(r, 'search', 'neo4j_vector', 'p95_ms_k100')}"),
        ("  neo4j_vector k=100 recall@10 vs exact", lambda r: get(r, "search", "neo4j_vector", "recall@10_vs_exact_k100")),
        ("engine search (text -> top 10) p50 / p95 ms",
         lambda r: f"{get(r, 'search', 'engine_search', 'p50_ms')} / {get(r, 'search', 'engine_search', 'p95_ms')}"),
        ("like -> changed ranking p50 / p95 ms",
         lambda r: f"{get(r, 'interactions', 'like', 'p50_ms')} / {get(r, 'interactions', 'like', 'p95_ms')}"),
        ("  like p95 ms after the first (and the first)",
         lambda r: f"{get(r, 'interactions', 'like', 'p95_ms_after_first')} "
                   f"({(get(r, 'interactions', 'like', 'each_ms', default=None) or ['-'])[0]})"),
        ("tag -> changed ranking p50 / p95 ms",
         lambda r: f"{get(r, 'interactions', 'tag', 'p50_ms')} / {get(r, 'interactions', 'tag', 'p95_ms')}"),
        ("  save afterwards p50 ms (background)", lambda r: get(r, "interactions", "save_afterwards", "p50_ms")),
        ("local vs full: max |diff|", lambda r: f"{get(r, 'interactions', 'error_vs_full', 'max_abs', default=float('nan')):.2g}"),
        ("  images off by > 1e-4", lambda r: get(r, "interactions", "error_vs_full", "images_over_1e-4")),
        ("layer dtype", lambda r: get(r, "layer_dtype")),
        ("load average (start -> end)", lambda r: f"{get(r, 'load_average_start', default=0):.1f} -> "
                                                 f"{get(r, 'load_average_end', default=0):.1f}"),
    ]
    head = ["", *(_label(r["products"]) for r in results)]
    lines = [" | ".join(f"{h:>14}" if i else f"{h:<44}" for i, h in enumerate(head))]
    for name, fmt in rows:
        cells = []
        for r in results:
            try:
                cells.append(str(fmt(r)))
            except (TypeError, ValueError):
                cells.append("-")
        lines.append(" | ".join([f"{name:<44}", *(f"{c:>14}" for c in cells)]))
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    from experiments.figures import pyplot, save_figure

    plt = pyplot()
    sizes = [r["products"] for r in results]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))

    def series(ax, label, values, **kw):
        pts = [(s, v) for s, v in zip(sizes, values, strict=True) if isinstance(v, int | float)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label, **kw)

    def g(r, *path):
        for p in path:
            r = r.get(p, {}) if isinstance(r, dict) else {}
        return r if isinstance(r, int | float) else None

    ax = axes[0, 0]
    series(ax, "bulk load (end to end)", [g(r, "first_load", "relationships_per_s") for r in results])
    series(ax, "importer alone", [g(r, "first_load", "import_relationships_per_s") for r in results])
    ax.axhline(100_000, ls=":", c="grey")
    ax.set_title("first load: relationships/s")
    ax = axes[0, 1]
    series(ax, "neighbour sampling", [g(r, "train_neighbour", "seconds_per_epoch") for r in results])
    series(ax, "full graph", [g(r, "train_full", "seconds_per_epoch") for r in results])
    ax.set_title("training: seconds per epoch")
    ax = axes[0, 2]
    series(ax, "Python, training", [g(r, "train_neighbour", "peak_python_mb") for r in results])
    series(ax, "Python, interactions", [g(r, "interactions", "peak_python_mb") for r in results])
    series(ax, "Neo4j JVM", [max(filter(None, [g(r, k, "peak_neo4j_mb") for k in ("first_load", "search")]), default=None)
                             for r in results])
    ax.set_title("peak memory (MB)")
    ax = axes[1, 0]
    for kind in ("flat", "ivf", "hnsw", "neo4j_vector"):
        series(ax, f"{kind} p50", [g(r, "search", kind, "p50_ms") for r in results])
    ax.axhline(20, ls=":", c="grey")
    ax.set_title("search: one query, ms (p50)")
    ax = axes[1, 1]
    for kind in ("ivf", "hnsw", "neo4j_vector"):
        series(ax, kind, [g(r, "search", kind, "recall@10_vs_exact") for r in results])
    ax.axhline(0.95, ls=":", c="grey")
    ax.set_title("search: recall@10 against exact")
    ax = axes[1, 2]
    for what in ("like", "tag"):
        for q in ("p50_ms", "p95_ms"):
            series(ax, f"{what} {q[:3]}", [g(r, "interactions", what, q) for r in results],
                   ls="-" if q == "p50_ms" else "--")
    series(ax, "like p95 after the first", [g(r, "interactions", "like", "p95_ms_after_first") for r in results],
           ls=":")
    ax.axhline(1000, ls=":", c="grey")
    ax.set_title("interaction -> changed ranking, ms")
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xlabel("products")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in (axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 0], axes[1, 2]):
        ax.set_yscale("log")
    fig.suptitle("tailor at 10k / 100k / 1M generated products (benchmarks/bench_scale.py)")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    home = Path(os.environ.get("TAILOR_HOME", ROOT / ".tailor"))
    from readers.datasets import myntra_catalog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "scale")
    parser.add_argument("--features", type=Path, default=home / "features")
    parser.add_argument("--catalog", type=Path, default=myntra_catalog())
    parser.add_argument("--split-file", type=Path, default=home / "splits" / "myntra-small-products.json",
                        help="myntra-small's composed queries (built from the catalog when absent)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--load-method", choices=("import", "create"), default="import")
    parser.add_argument("--full-train-max", default="10k", help="full-graph training up to this size")
    parser.add_argument("--neo4j-vector-max", default="1m", help="Neo4j's vector index up to this size")
    parser.add_argument("--float16-from", default="1m", help="per-layer embeddings in float16 from this size")
    parser.add_argument("--max-steps", type=int, default=40,
                        help="from --max-steps-from on, train this many batches an epoch and extrapolate the epoch")
    parser.add_argument("--max-steps-from", default="1m")
    parser.add_argument("--queries", type=int, default=200, help="test queries searched")
    parser.add_argument("--rounds", type=int, default=30, help="likes, and as many tags")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rerun-first-load", action="store_true",
                        help="only the first load again (into a database of its own), replacing that entry in OUT")
    parser.add_argument("--rerun-interactions", action="store_true",
                        help="only the likes and tags again, on the database and engine a run of each size left in OUT")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one size, in this process
    parser.add_argument("--report-only", action="store_true", help="table and plot from results already there")
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        path = args.out / _label(n) / "result.json"
        if not args.report_only:
            tick = time.perf_counter()
            cmd = [sys.executable, __file__, "--one", str(n), "--out", str(args.out), "--features", str(args.features),
                   "--catalog", str(args.catalog), "--split-file", str(args.split_file), "--epochs", str(args.epochs),
                   "--load-method", args.load_method, "--full-train-max", args.full_train_max,
                   "--neo4j-vector-max", args.neo4j_vector_max, "--float16-from", args.float16_from,
                   "--max-steps", str(args.max_steps), "--max-steps-from", args.max_steps_from,
                   "--queries", str(args.queries), "--rounds", str(args.rounds), "--seed", str(args.seed),
                   *(["--rerun-interactions"] if args.rerun_interactions else []),
                   *(["--rerun-first-load"] if args.rerun_first_load else [])]
            print(f"=== {n:,} products ===", flush=True)
            if not (args.rerun_interactions or args.rerun_first_load):
                path.unlink(missing_ok=True)  # no figures of an earlier run passed off as this one's
            done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode != 0:
                print(f"{n:,} products: failed (exit {done.returncode}); see the output above; the figures "
                      "measured before the failure are kept", flush=True)
            else:
                print(f"{n:,} products: {time.perf_counter() - tick:.0f} s in all", flush=True)
        if path.exists():
            results.append(json.loads(path.read_text()))
    if not results:
        raise SystemExit("no results")
    from readers.files import atomic_write_json

    atomic_write_json(args.out / "results.json", results)
    print()
    print(table(results))
    plot(results, args.out / "scale.png")
    print(f"\nplot: {args.out / 'scale.png'}; figures: {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
