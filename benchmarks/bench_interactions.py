"""Interaction-to-effect latency: from an interaction's first write to the changed ranking.

Measured on what `tailor serve` holds (an :class:`InteractiveSession`). For each round: a test query is
stored, answered and explained (``tailor query``); two of its results are liked (``tailor like``), then its
candidate is tagged from a sentence (``tailor tag``, attribute extraction included); the clock runs from
the call through the write and the incremental sync (changed nodes re-read, one R-GCN pass, FAISS rows
replaced) to the new ranking; bundle, index and base graph are written afterwards in the background (timed
apart). It also times searches and queries, and the ``tailor like`` command as a fresh process (which pays
for Python, torch and the engine's files first).

Not a test: run it by hand on a workspace with a published model (``tailor train``)::

    TAILOR_HOME=/tmp/th1 python benchmarks/bench_interactions.py --rounds 40 --cli 5

Everything written carries ``who = "bench"`` and is removed at the end (then the index is synced back).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cli.db import connect  # noqa: E402
from engine.session import InteractiveSession  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from graphdb.export import composed_queries  # noqa: E402
from graphdb.interactions import remove_interactions  # noqa: E402
from readers.files import atomic_write_json  # noqa: E402

WHO = "bench"
TAGS = ("long sleeves", "striped", "slim fit", "cotton", "round neck", "black", "white", "formal")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(name: str, seconds: list[float]) -> str:
    ms = [1000 * s for s in seconds]
    return (f"{name:<34} n={len(ms):>3}  p50 {pct(ms, 50):7.1f} ms  p95 {pct(ms, 95):7.1f} ms  "
            f"min {min(ms):6.1f}  max {max(ms):7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="likes and as many tags")
    parser.add_argument("--cli", type=int, default=5, help="`tailor like` runs as a fresh process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    ws = Workspace.default()
    rng = random.Random(args.seed)
    results: dict[str, object] = {}
    with connect() as driver:
        tick = time.perf_counter()
        session = InteractiveSession(ws, driver, background_save=True)  # what `tailor serve` holds
        results["engine_load_s"] = time.perf_counter() - tick
        engine = session.engine
        removed = remove_interactions(driver, WHO)  # a previous interrupted run
        first = session.sync(full=True)
        session.live.flush()
        session.tag("warm-up: it is cotton", next(iter(engine.bundle.image_row)), who=WHO)  # the tagger loads once
        print(f"engine loaded in {results['engine_load_s']:.2f} s; full sync {first['refresh_seconds']:.2f} s; "
              f"leftovers removed: {removed}")
        queries = [q for q in composed_queries(driver, "test") if q.candidate in engine.bundle.image_row]
        rounds = rng.sample(queries, min(args.rounds, len(queries)))

        def ranking(q) -> list[str]:  # the engine as it is now (a sync swaps in a new one)
            return [i for i, _ in session.engine.search(q.candidate, q.text, 10).hits]

        search_s, query_s, like_s, tag_s, changed = [], [], [], [], {"like": 0, "tag": 0}
        liked_ranks: list[int] = []  # where the model puts the liked images (ranks 9 and 10) after the like
        parts: dict[str, list[float]] = {}
        for n, q in enumerate(rounds):
            start = time.perf_counter()
            ranking(q)
            search_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            answer = session.query(q.candidate, q.text, 10, who=WHO)
            query_s.append(time.perf_counter() - start)
            before = [r["id"] for r in answer["results"]]

            start = time.perf_counter()
            out = session.like(answer["query_id"], before[8:10], who=WHO, k=50)  # the query answered again
            after = [r["id"] for r in out["results"]][:10]
            like_s.append(time.perf_counter() - start)
            # Where the model alone puts them (the session's answer lists liked images first anyway).
            ranked = [i for i, _ in session.engine.search(q.candidate, q.text, 50, liked=tuple(before[8:10])).hits]
            liked_ranks += [ranked.index(i) + 1 if i in ranked else 51 for i in before[8:10]]
            saved = session.live.flush()  # the files are written after the ranking changed: not in the latency
            parts.setdefault("like: write and the query answered again", []).append(
                like_s[-1] - out["refresh_seconds"])
            for k, v in out["seconds"].items():
                parts.setdefault(f"like: {k}", []).append(v)
            parts.setdefault("like: save afterwards (background)", []).append(saved)
            changed["like"] += after != before

            before = ranking(q)
            start = time.perf_counter()
            out = session.tag(f"that one is {rng.choice(TAGS)}", q.candidate, who=WHO)  # extraction included
            after = ranking(q)
            tag_s.append(time.perf_counter() - start)
            session.live.flush()
            changed["tag"] += after != before
            print(f"round {n + 1}/{len(rounds)}: query {1000 * query_s[-1]:.0f} ms, like {1000 * like_s[-1]:.0f} ms, "
                  f"tag {1000 * tag_s[-1]:.0f} ms ({out['refresh']}, {out['changed_images']} images changed)",
                  flush=True)

        cli_s = []
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        for q in rounds[: args.cli]:
            answer = session.query(q.candidate, q.text, 10, who=WHO)
            hits = [r["id"] for r in answer["results"]]
            session.close()  # the command below must see this process's last write
            start = time.perf_counter()
            out = subprocess.run(["tailor", "like", "--query", answer["query_id"], "--images", ",".join(hits[6:8]),
                                  "--who", WHO, "--json"], capture_output=True, text=True, env=env, check=True)
            cli_s.append(time.perf_counter() - start)
            reported = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"tailor like (fresh process): {cli_s[-1]:.2f} s, of which refresh "
                  f"{reported['refresh_seconds']:.2f} s ({reported['refresh']})", flush=True)
            session = InteractiveSession(ws, driver, background_save=True)
            engine = session.engine

        cleaned = remove_interactions(driver, WHO)
        restored = session.sync()
        session.close()
        print(f"removed {cleaned}; index synced back ({restored['refresh']}, {restored['refresh_seconds']:.2f} s)")

    print()
    print(summary("search (text -> top 10)", search_s))
    print(summary("query stored, answered, reasons", query_s))
    print(summary("like -> changed ranking", like_s))
    print(summary("tag -> changed ranking", tag_s))
    for name, values in parts.items():
        print(summary(f"  {name}", values))
    if cli_s:
        print(summary("`tailor like` as a new process", cli_s))
    print(f"rankings changed: after {changed['like']}/{len(rounds)} likes, {changed['tag']}/{len(rounds)} tags")
    up = sum(1 for n, r in enumerate(liked_ranks) if r < (9 if n % 2 == 0 else 10))
    print(f"liked images (ranks 9 and 10 before): {up}/{len(liked_ranks)} moved up, median rank after "
          f"{statistics.median(liked_ranks):g} (51 = not in the top 50)")
    results.update({
        "rounds": len(rounds),
        "search_ms": {"p50": 1000 * pct(search_s, 50), "p95": 1000 * pct(search_s, 95)},
        "query_ms": {"p50": 1000 * pct(query_s, 50), "p95": 1000 * pct(query_s, 95)},
        "like_ms": {"p50": 1000 * pct(like_s, 50), "p95": 1000 * pct(like_s, 95)},
        "tag_ms": {"p50": 1000 * pct(tag_s, 50), "p95": 1000 * pct(tag_s, 95)},
        "parts_ms_p50": {k: 1000 * statistics.median(v) for k, v in parts.items()},
        "cli_like_s": {"p50": pct(cli_s, 50), "max": max(cli_s)} if cli_s else None,
        "rankings_changed": changed,
        "liked_ranks_after": liked_ranks,
    })
    if args.json:
        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()
