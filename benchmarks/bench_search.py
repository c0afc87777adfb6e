"""Search latency with and without the second stage, on the published engine (read only).

For each of ``--queries`` test queries (read from Neo4j: candidate and caption), times the engine's
search for the top 10: stage one alone (FAISS over the R-GCN embeddings) and two-stage (FAISS's top
``candidates`` re-ordered from the facts in memory, reasons for the 10 shown). Text features come from
the feature cache as in a running server (a caption never seen costs one MiniLM pass more; ``--fresh-text``
appends a word to each caption so that every one is encoded). Nothing is written anywhere.

Not a test: run it by hand on a workspace with a published model::

    TAILOR_HOME=/tmp/th1 python benchmarks/bench_search.py --queries 500
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cli.db import connect  # noqa: E402
from engine.pipeline import load_published  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from graphdb.export import composed_queries  # noqa: E402


def summary(name: str, seconds: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(seconds)
    out = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}
    print(f"{name:<44} n={len(ms):>4}  p50 {out['p50']:6.2f} ms  p95 {out['p95']:6.2f} ms  max {out['max']:7.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh-text", action="store_true", help="captions never seen: MiniLM runs each time")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    tick = time.perf_counter()
    engine = load_published(Workspace.default()).searcher
    loaded = time.perf_counter() - tick
    stage = engine.second_stage
    if stage is None:
        sys.exit("the published engine has no second stage: publish one with `tailor train`")
    with connect() as driver:
        queries = [q for q in composed_queries(driver, "test") if q.candidate in engine.bundle.image_row]
    rounds = random.Random(args.seed).sample(queries, min(args.queries, len(queries)))
    suffix = " please" if args.fresh_text else ""
    print(f"engine loaded in {loaded:.2f} s: {len(engine.bundle.image_ids):,} images, {len(stage.facts):,} facts, "
          f"second stage over the top {stage.candidates}; {len(rounds)} test queries")
    for q in rounds[:20]:  # warm-up: first calls pay for lazy initialisation
        engine.search(q.candidate, q.text, args.k)
    one, two, reranked = [], [], 0
    for n, q in enumerate(rounds):
        text = q.text + (f"{suffix} {n}" if suffix else "")
        start = time.perf_counter()
        engine.search(q.candidate, text, args.k, rerank=False)
        one.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = engine.search(q.candidate, text + (" too" if suffix else ""), args.k)
        two.append(time.perf_counter() - start)
        reranked += result.reranked
    print()
    figures = {
        "engine_load_s": loaded, "queries": len(rounds), "candidates": stage.candidates,
        "stage_one_ms": summary("stage one (FAISS, top 10)", one),
        "two_stage_ms": summary(f"two-stage (FAISS top {stage.candidates} + ranker + reasons)", two),
        "reranked": reranked,
    }
    print(f"re-ordered by facts: {reranked}/{len(rounds)} (the rest kept the embedding order)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
