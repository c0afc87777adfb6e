"""`tailor serve` under load, on loopback: throughput and latency of read-only searches from 8 clients, then
a mixed run (searches, stored queries, likes, tags) with the exact edge counts it must leave behind, and
the server's memory before and after each run.

It starts its own `tailor serve` on a free 127.0.0.1 port over the workspace's published engine
(``TAILOR_HOME``) and the usual Neo4j (``NEO4J_URI`` ... or the local server)::

    TAILOR_HOME=/tmp/th1 python benchmarks/bench_serve.py --seconds 20 --clients 8

Each run is bounded (``--seconds``, ``--mixed-requests``). The mixed run writes with ``who = "bench-serve"``
and removes it all at the end (then syncs); do not point it at a database you must not write to. The
machine's load average is printed with the figures: on a shared machine they are pessimistic.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cli.db import connect  # noqa: E402
from engine.pipeline import load_published  # noqa: E402
from engine.session import InteractiveSession  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from graphdb.export import composed_queries  # noqa: E402
from graphdb.interactions import remove_interactions  # noqa: E402

WHO = "bench-serve"
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One keep-alive connection, as a page or a script would hold it."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        for attempt in (0, 1):  # a kept-alive connection the server closed: reconnect once
            try:
                self.conn.request("POST", path, json.dumps(body).encode(), JSON)
                response = self.conn.getresponse()
                return response.status, json.loads(response.read() or b"null")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[int, dict]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TAILOR_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tailor serve exited ({proc.returncode}); see {log}")
        try:
            status, _ = Client(port).get("/health")
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"tailor serve did not start within 10 minutes; see {log}")


def read_only(port: int, queries: list, clients: int, seconds: float, seed: int) -> dict:
    """``clients`` threads, each POSTing /search back to back for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def run(n: int) -> None:
        rng = random.Random(seed + n)
        client = Client(port)
        while time.monotonic() < stop:
            q = rng.choice(queries)
            tick = time.perf_counter()
            status, _ = client.post("/search", {"image": q.candidate, "text": q.text, "k": 10})
            latencies[n].append(time.perf_counter() - tick)
            errors[n] += status != 200

    began = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    ms = [1000 * x for lat in latencies for x in lat]
    return {"answers": len(ms), "errors": sum(errors), "seconds": round(wall, 2),
            "answers_per_s": round(len(ms) / wall, 1), "p50_ms": round(pct(ms, 50), 1),
            "p95_ms": round(pct(ms, 95), 1), "p99_ms": round(pct(ms, 99), 1), "max_ms": round(max(ms), 1)}


def mixed(port: int, queries: list, clients: int, total: int, seed: int, attributes: list[str],
          images: list[str]) -> dict:
    """``total`` requests over ``clients`` threads: 70% searches, 10% stored queries, 10% likes (of 3 results
    of a query stored for it), 10% tags (a distinct (image, attribute) each, so each must add one edge).
    Returns what the server said it created, to check against the database."""
    rng = random.Random(seed)
    plan = rng.choices(["search", "query", "like", "tag"], weights=[70, 10, 10, 10], k=total)
    pairs = iter([(i, a) for a in attributes for i in images])
    work: list[tuple] = []
    for kind in plan:
        if kind == "tag":
            work.append((kind, next(pairs)))
        else:
            work.append((kind, rng.choice(queries)))
    lock = threading.Lock()
    made = {"queries": 0, "LIKED_FOR": 0, "LIKED_FROM": 0, "USER_TAGGED": 0, "errors": 0, "likes": 0, "tags": 0}
    latencies: dict[str, list[float]] = {k: [] for k in ("search", "query", "like", "tag")}
    queue = list(enumerate(work))

    def run() -> None:
        client = Client(port)
        while True:
            with lock:
                if not queue:
                    return
                _, (kind, item) = queue.pop()
            tick = time.perf_counter()
            if kind == "search":
                status, _ = client.post("/search", {"image": item.candidate, "text": item.text, "k": 10})
                ok = status == 200
            elif kind == "query":
                status, _ = client.post("/query", {"image": item.candidate, "text": item.text, "k": 10, "who": WHO})
                ok = status == 200
                with lock:
                    made["queries"] += ok
            elif kind == "like":
                status, answer = client.post("/query", {"image": item.candidate, "text": item.text, "k": 10,
                                                        "who": WHO})
                ok = status == 200
                if ok:
                    with lock:
                        made["queries"] += 1
                    picks = [r["id"] for r in answer["results"]][2:5]
                    status, liked = client.post("/like", {"query_id": answer["query_id"], "images": picks, "who": WHO})
                    ok = status == 200
                    if ok:
                        with lock:
                            made["likes"] += 1
                            made["LIKED_FOR"] += liked["created"]["LIKED_FOR"]
                            made["LIKED_FROM"] += liked["created"]["LIKED_FROM"]
            else:
                image, attribute = item
                status, tagged = client.post("/tag", {"image": image, "sentence": f"it is {attribute}", "who": WHO})
                ok = status == 200
                if ok:
                    with lock:
                        made["tags"] += 1
                        made["USER_TAGGED"] += sum(t["new_edge"] for t in tagged["tags"])
            with lock:
                latencies[kind].append(1000 * (time.perf_counter() - tick))
                made["errors"] += not ok

    began = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    made["seconds"] = round(wall, 2)
    made["latency_ms"] = {k: {"n": len(v), "p50": round(pct(v, 50), 1), "p95": round(pct(v, 95), 1)}
                          for k, v in latencies.items()}
    return made


def written(driver) -> dict:
    records, _, _ = driver.execute_query(
        "MATCH ()-[r]->() WHERE type(r) IN ['LIKED_FOR', 'LIKED_FROM', 'USER_TAGGED', 'LIKED_WITH'] AND r.who = $who "
        "RETURN type(r) AS t, count(r) AS n", who=WHO)
    out = {r["t"]: r["n"] for r in records}
    out["queries"] = driver.execute_query("MATCH (c:Caption {split: 'query', who: $who}) RETURN count(c) AS n",
                                          who=WHO).records[0]["n"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the read-only run")
    parser.add_argument("--mixed-requests", type=int, default=400, help="requests in the mixed run (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    ws = Workspace.default()
    engine = load_published(ws).searcher
    attributes = [a for a in engine.bundle.attribute_names if a.isalpha()][:20]
    results: dict[str, object] = {"cores": os.cpu_count(), "images": len(engine.bundle.image_ids),
                                  "clients": args.clients}
    with connect() as driver:
        removed = remove_interactions(driver, WHO)  # an interrupted earlier run
        queries = [q for q in composed_queries(driver, "test") if q.candidate in engine.bundle.image_row]
        del engine
        port = free_port()
        log = ws.outputs / "bench-serve.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = start_server(ws.home, port, log)
        try:
            warm = Client(port)
            for q in random.Random(args.seed).sample(queries, min(200, len(queries))):
                warm.post("/search", {"image": q.candidate, "text": q.text, "k": 10})  # texts encoded once
            sample = random.Random(args.seed).sample(queries, min(200, len(queries)))
            results["rss_mb_start"] = round(rss_mb(proc.pid), 1)
            results["load_before"] = [round(x, 2) for x in os.getloadavg()]
            results["read_only"] = read_only(port, sample, args.clients, args.seconds, args.seed)
            results["load_after_read_only"] = [round(x, 2) for x in os.getloadavg()]
            results["rss_mb_after_read_only"] = round(rss_mb(proc.pid), 1)
            print(f"leftovers removed: {removed}; {len(queries):,} test queries, {results['images']:,} images")
            print("read-only /search:", json.dumps(results["read_only"]),
                  f"load average {results['load_before']} -> {results['load_after_read_only']}")
            if args.mixed_requests:
                images = sorted({q.candidate for q in queries})
                made = mixed(port, sample, args.clients, args.mixed_requests, args.seed, attributes, images)
                Client(port).post("/sync", {})
                stored = written(driver)
                results["mixed"] = made
                results["mixed_in_database"] = stored
                results["rss_mb_after_mixed"] = round(rss_mb(proc.pid), 1)
                # Each like: 3 images, none the candidate (results exclude it); each tag: one new edge.
                intended = {"LIKED_FOR": 3 * made["likes"], "LIKED_FROM": 3 * made["likes"],
                            "USER_TAGGED": made["tags"], "queries": made["queries"]}
                results["mixed_intended"] = intended
                exact = all(stored.get(k, 0) == made[k] == intended[k] for k in intended)
                results["mixed_exact"] = exact and not stored.get("LIKED_WITH", 0)
                print("mixed:", json.dumps(made))
                print("intended:", json.dumps(intended), "in the database:", json.dumps(stored),
                      "exact" if results["mixed_exact"] else "MISMATCH")
            print(f"server RSS: {results['rss_mb_start']} MB at start, {results['rss_mb_after_read_only']} MB after "
                  f"the read-only run" + (f", {results['rss_mb_after_mixed']} MB after the mixed run"
                                          if "rss_mb_after_mixed" in results else ""))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            cleaned = remove_interactions(driver, WHO)
            session = InteractiveSession(ws, driver)  # the published engine follows the removal
            session.sync()
            session.close()
            print(f"removed what the run wrote: {cleaned}; engine synced")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
