"""Interaction-to-effect latency: from an interaction's first write to the changed ranking.

For each round: a test query is stored (``tailor query``'s write) and answered; then either two of its
results are liked (``tailor like``) or its candidate is tagged (``tailor tag``); the clock runs from the
like/tag write through the incremental sync (changed nodes re-read, one R-GCN pass, FAISS rows replaced)
to the new ranking; bundle, index and base graph are written afterwards in the background (timed apart). It also times query answering, and the ``tailor like``
command as a fresh process (which pays for Python, torch and the engine's files first).

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
from cli.live import LiveEngine  # noqa: E402
from cli.workspace import Workspace  # noqa: E402
from graphdb.export import composed_queries  # noqa: E402
from graphdb.interactions import like, remove_interactions, store_query, tag_image  # noqa: E402

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
    tick = time.perf_counter()
    live = LiveEngine(ws)
    load_seconds = time.perf_counter() - tick
    engine = live.engine
    results: dict[str, object] = {"engine_load_s": load_seconds}
    with connect() as driver:
        removed = remove_interactions(driver, WHO)  # a previous interrupted run
        first = live.sync(driver, full=True)
        print(f"engine loaded in {load_seconds:.2f} s; full sync {first.total:.2f} s "
              f"({', '.join(f'{k} {v:.2f}' for k, v in first.seconds.items())}); leftovers removed: {removed}")
        queries = [q for q in composed_queries(driver, "test") if q.candidate in engine.bundle.image_row]
        rounds = rng.sample(queries, min(args.rounds, len(queries)))

        search_s, like_s, tag_s, changed = [], [], [], {"like": 0, "tag": 0}
        parts: dict[str, list[float]] = {}
        for n, q in enumerate(rounds):
            roles = engine.parse(q.text)
            query_id = store_query(driver, q.candidate, q.text, roles, who=WHO)
            start = time.perf_counter()
            before = [i for i, _ in engine.search(q.candidate, q.text, 10, roles=roles).hits]
            search_s.append(time.perf_counter() - start)

            start = time.perf_counter()
            like(driver, query_id, before[8:10], who=WHO)
            written = time.perf_counter()
            report = live.sync(driver)
            after = [i for i, _ in engine.search(q.candidate, q.text, 10, roles=roles).hits]
            like_s.append(time.perf_counter() - start)
            live.flush()  # the files are written after the ranking changed; not part of the latency
            parts.setdefault("like: write", []).append(written - start)
            for k, v in report.seconds.items():
                parts.setdefault(f"like: {k}", []).append(v)
            parts.setdefault("like: save afterwards (background)", []).append(report.save_seconds)
            changed["like"] += after != before

            before = after
            start = time.perf_counter()
            tag_image(driver, q.candidate, rng.choice(TAGS), who=WHO, phrase="benchmark")
            report = live.sync(driver)
            after = [i for i, _ in engine.search(q.candidate, q.text, 10, roles=roles).hits]
            tag_s.append(time.perf_counter() - start)
            live.flush()
            changed["tag"] += after != before
            print(f"round {n + 1}/{len(rounds)}: like {1000 * like_s[-1]:.0f} ms, tag {1000 * tag_s[-1]:.0f} ms "
                  f"({report.mode}, {report.changed_images} images changed)", flush=True)

        cli_s = []
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        for q in rounds[: args.cli]:
            query_id = store_query(driver, q.candidate, q.text, engine.parse(q.text), who=WHO)
            hits = [i for i, _ in engine.search(q.candidate, q.text, 10).hits]
            start = time.perf_counter()
            out = subprocess.run(["tailor", "like", "--query", query_id, "--images", ",".join(hits[6:8]),
                                  "--who", WHO, "--json"], capture_output=True, text=True, env=env, check=True)
            cli_s.append(time.perf_counter() - start)
            reported = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"tailor like (fresh process): {cli_s[-1]:.2f} s, of which refresh "
                  f"{reported['refresh_seconds']:.2f} s ({reported['refresh']})", flush=True)

        cleaned = remove_interactions(driver, WHO)
        restored = live.sync(driver)
        print(f"removed {cleaned}; index synced back ({restored.mode}, {restored.total:.2f} s)")

    print()
    print(summary("query answered (text -> top 10)", search_s))
    print(summary("like -> changed ranking", like_s))
    print(summary("tag -> changed ranking", tag_s))
    for name, values in parts.items():
        print(summary(f"  {name}", values))
    if cli_s:
        print(summary("`tailor like` as a new process", cli_s))
    print(f"rankings changed: after {changed['like']}/{len(rounds)} likes, {changed['tag']}/{len(rounds)} tags")
    results.update({
        "rounds": len(rounds),
        "search_ms": {"p50": 1000 * pct(search_s, 50), "p95": 1000 * pct(search_s, 95)},
        "like_ms": {"p50": 1000 * pct(like_s, 50), "p95": 1000 * pct(like_s, 95)},
        "tag_ms": {"p50": 1000 * pct(tag_s, 50), "p95": 1000 * pct(tag_s, 95)},
        "parts_ms_p50": {k: 1000 * statistics.median(v) for k, v in parts.items()},
        "cli_like_s": {"p50": pct(cli_s, 50), "max": max(cli_s)} if cli_s else None,
        "rankings_changed": changed,
    })
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
