"""Ingest throughput on a local Neo4j that this script starts (and stops) in a temporary directory.

Not a test: run it by hand, on a machine doing little else::

    python benchmarks/bench_ingest.py                       # myntra-small + a 1.1M-relationship catalog
    python benchmarks/bench_ingest.py --workers 1,2 --repeats 3 --synthetic-images 100000
    python benchmarks/bench_ingest.py --skip-myntra --heap 2g --pagecache 1g

It loads (a) myntra-small through ``graphdb.loaders.load_catalog`` (as ``tailor load catalog`` does) and
(b) a generated catalog (deterministic: seeded) written straight through ``ingest_images`` and
``ingest_queries``, each ``--repeats`` times into an empty graph, and prints the median relationships/s
and nodes/s, then the time of a second (idempotent) run over the loaded graph, which must create nothing.

To say what limits the load it also prints, per run, where the CPU went: the Neo4j JVM (all its threads,
from /proc, split into query/commit workers, GC and JIT) and this Python process (the driver packing
parameters and our batch preparation), against the wall time and the load average (other processes on
the machine take their share of the cores too).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neo4j import Driver  # noqa: E402

from graphdb.connection import open_driver  # noqa: E402
from graphdb.ingest import IngestReport, default_workers, ingest_images, ingest_queries  # noqa: E402
from graphdb.maintenance import delete_everything  # noqa: E402
from graphdb.schema import apply_schema  # noqa: E402
from graphdb.server.manager import LocalServer  # noqa: E402
from graphdb.settings import Neo4jSettings  # noqa: E402
from readers.datasets import myntra_catalog  # noqa: E402
from readers.records import AttributeValue, ImageRecord, QueryRecord  # noqa: E402

MYNTRA = myntra_catalog()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------- measuring


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _thread_group(name: str) -> str:
    if name.startswith("neo4j.BoltWorke") or name.startswith("neo4j.Bolt"):
        return "bolt (query + commit)"
    if name.startswith(("GC Thread", "G1 ")):
        return "gc"
    if name.startswith(("C1 Compiler", "C2 Compiler")):
        return "jit"
    return "other"


def jvm_cpu(pid: int) -> Counter[str]:
    """CPU seconds used so far by each group of the JVM's threads (utime + stime from /proc)."""
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[_thread_group(name)] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


@dataclass
class Usage:
    """Wall time and CPU seconds of one measured call."""

    wall: float = 0.0
    python_cpu: float = 0.0
    jvm: Counter[str] = field(default_factory=Counter)
    load: float = 0.0  # 1-minute load average at the end

    @property
    def jvm_cpu(self) -> float:
        return sum(self.jvm.values())

    def describe(self) -> str:
        groups = ", ".join(f"{k} {v:.1f}" for k, v in self.jvm.most_common() if v >= 0.05)
        return (
            f"wall {self.wall:.1f} s; JVM CPU {self.jvm_cpu:.1f} s ({groups}); "
            f"Python CPU {self.python_cpu:.1f} s; load average {self.load:.1f} on {os.cpu_count()} cores"
        )


@contextlib.contextmanager
def measured(pid: int) -> Iterator[Usage]:
    usage = Usage()
    jvm0, cpu0, wall0 = jvm_cpu(pid), time.process_time(), time.perf_counter()
    yield usage
    usage.wall = time.perf_counter() - wall0
    usage.python_cpu = time.process_time() - cpu0
    usage.jvm = jvm_cpu(pid)
    usage.jvm.subtract(jvm0)
    usage.load = os.getloadavg()[0]


# --------------------------------------------------------------------------------------- synthetic

_VOCAB = {
    "colour": [f"colour{i}" for i in range(46)],
    "article_type": [f"type{i}" for i in range(140)],
    "gender": ["men", "women", "boys", "girls", "unisex"],
    "usage": ["casual", "formal", "sports", "ethnic", "party", "smart casual", "travel", "home"],
    "season": ["summer", "winter", "fall", "spring"],
    "master_category": [f"master{i}" for i in range(7)],
    "sub_category": [f"sub{i}" for i in range(45)],
}


def synthetic_catalog(images: int, seed: int = 0) -> tuple[list[ImageRecord], list[QueryRecord]]:
    """``images`` products with 7 attributes each and one composed query per product (MODIFIES, TARGETS and
    two MENTIONS): 11 relationships per product, so 100,000 products give 1.1 million. Seeded: every run
    produces the same records.
    """
    rng = random.Random(seed)
    records = []
    for n in range(images):
        values = {kind: rng.choice(vocab) for kind, vocab in _VOCAB.items()}
        title = f"brand{rng.randrange(500)} {values['gender']} {values['colour']} {values['article_type']}"
        attrs = tuple(AttributeValue(kind, value) for kind, value in values.items())
        records.append(ImageRecord(f"s{n}", title, f"images/s{n}.jpg", rng.choice(["train", "val", "test"]),
                                   "", attrs, source_line=n + 2))
    queries = []
    for n, record in enumerate(records):
        target = records[rng.randrange(images)]
        old = record.attributes[0].value
        new = target.attributes[0].value
        if new == old:  # a caption changes something
            new = _VOCAB["colour"][(_VOCAB["colour"].index(old) + 1) % len(_VOCAB["colour"])]
        queries.append(QueryRecord(f"q{n}", record.id, target.id, f"replace {old} with {new}", record.split,
                                   "", added=(new,), removed=(old,), source_line=n + 1))
    return records, queries


# ------------------------------------------------------------------------------------------ runs


@dataclass
class Run:
    usage: Usage
    seconds: float  # ingest time (as IngestReport.seconds; excludes reading files)
    nodes: int
    relationships: int

    @property
    def rels_per_s(self) -> float:
        return self.relationships / self.seconds if self.seconds else 0.0

    @property
    def nodes_per_s(self) -> float:
        return self.nodes / self.seconds if self.seconds else 0.0


def _sum(*reports: IngestReport) -> tuple[float, int, int]:
    return (sum(r.seconds for r in reports), sum(r.nodes_created for r in reports),
            sum(r.relationships_created for r in reports))


def load_myntra(driver: Driver, path: Path, split_file: Path, batch_size: int,
                workers: int) -> tuple[float, int, int]:
    from graphdb.loaders import load_catalog

    os.environ["TAILOR_INGEST_WORKERS"] = str(workers)  # load_catalog takes the library default
    summary = load_catalog(driver, path, split_file, batch_size=batch_size)
    return _sum(summary.images, summary.queries)


def load_synthetic(driver: Driver, data: tuple[list[ImageRecord], list[QueryRecord]], batch_size: int,
                   workers: int) -> tuple[float, int, int]:
    images, queries = data
    a = ingest_images(driver, images, "synthetic/products.csv", batch_size=batch_size, workers=workers)
    b = ingest_queries(driver, queries, "synthetic/queries.json", batch_size=batch_size, workers=workers)
    return _sum(a, b)


def empty(driver: Driver) -> None:
    """Deletes everything, relationships first, in bounded transactions (see delete_everything)."""
    delete_everything(driver, batch=50000)


def bench(name: str, driver: Driver, pid: int, load: Callable[[], tuple[float, int, int]],
          repeats: int) -> None:
    runs = []
    for i in range(repeats):
        wipe0 = time.perf_counter()
        empty(driver)
        time.sleep(2)  # let the deletion's garbage collection settle before timing
        print(f"  [{name}] run {i + 1}/{repeats} (graph emptied in {time.perf_counter() - wipe0:.0f} s) ...",
              flush=True)
        with measured(pid) as usage:
            seconds, nodes, rels = load()
        run = Run(usage, seconds, nodes, rels)
        runs.append(run)
        print(f"    {rels:,} relationships, {nodes:,} nodes in {seconds:.1f} s: {run.rels_per_s:,.0f} rel/s, "
              f"{run.nodes_per_s:,.0f} nodes/s\n    {usage.describe()}", flush=True)
    with measured(pid) as usage:
        seconds, nodes, rels = load()
    med_rels = statistics.median(r.rels_per_s for r in runs)
    med_nodes = statistics.median(r.nodes_per_s for r in runs)
    print(f"  {name}: median of {repeats} run(s): {med_rels:,.0f} relationships/s, {med_nodes:,.0f} nodes/s "
          f"(runs: {', '.join(f'{r.rels_per_s:,.0f}' for r in runs)} rel/s)")
    print(f"  {name}: second run over the loaded graph: {seconds:.1f} s, created {nodes} nodes and {rels} "
          f"relationships\n    {usage.describe()}")
    if nodes or rels:
        print(f"  !! {name}: the second run created something; ingest is not idempotent")


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--myntra", type=Path, default=MYNTRA, help="myntra-small products.csv")
    parser.add_argument("--skip-myntra", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--synthetic-images", type=int, default=100_000, help="11 relationships per image")
    parser.add_argument("--repeats", type=int, default=3, help="timed loads of each dataset (median printed)")
    parser.add_argument("--synthetic-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--workers", default=str(default_workers()), help="comma-separated, e.g. 1,2")
    parser.add_argument("--heap", help="JVM heap of the server (TAILOR_NEO4J_HEAP; default 2g)")
    parser.add_argument("--pagecache", help="page cache of the server (TAILOR_NEO4J_PAGECACHE; default 512m)")
    parser.add_argument("--keep", action="store_true", help="keep the server's temporary directory")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    if args.heap:
        os.environ["TAILOR_NEO4J_HEAP"] = args.heap
    if args.pagecache:
        os.environ["TAILOR_NEO4J_PAGECACHE"] = args.pagecache

    tmp = Path(tempfile.mkdtemp(prefix="tailor-bench-ingest-"))
    server = LocalServer(tmp / "neo4j", bolt_port=free_port(), http_port=free_port())
    print(f"starting a local Neo4j in {tmp} ...", flush=True)
    status = server.start()
    assert status.pid is not None
    try:
        driver = open_driver(Neo4jSettings(uri=status.uri, password=server.password()))
        try:
            apply_schema(driver)
            print(f"server pid {status.pid}, heap {os.environ.get('TAILOR_NEO4J_HEAP', '2g')}, page cache "
                  f"{os.environ.get('TAILOR_NEO4J_PAGECACHE', '512m')}; batch size {args.batch_size}; "
                  f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
            # A fresh JVM spends its first loads compiling (JIT) and planning; time what follows.
            t0 = time.perf_counter()
            warm = synthetic_catalog(2000, seed=1)
            for _ in range(2):
                for _load_then_rerun in range(2):
                    load_synthetic(driver, warm, args.batch_size, max(workers))
                empty(driver)
            print(f"warmed up (two untimed 22,000-relationship loads and reruns) in "
                  f"{time.perf_counter() - t0:.0f} s")
            if not args.skip_myntra:
                if args.myntra.is_file():
                    split_file = tmp / "myntra-split.json"
                    for w in workers:
                        print(f"\n(a) myntra-small via load_catalog, {w} worker(s)")
                        bench(f"myntra-small w={w}", driver, status.pid,
                              lambda w=w: load_myntra(driver, args.myntra, split_file, args.batch_size, w),
                              args.repeats)
                else:
                    print(f"\n(a) skipped: {args.myntra} not found (--myntra PATH)")
            if not args.skip_synthetic:
                t0 = time.perf_counter()
                data = synthetic_catalog(args.synthetic_images)
                expected = sum(len(r.attributes) for r in data[0]) + 4 * len(data[1])
                print(f"\n(b) synthetic catalog: {len(data[0]):,} images, {len(data[1]):,} queries, "
                      f"{expected:,} relationships (generated in {time.perf_counter() - t0:.1f} s)")
                for w in workers:
                    bench(f"synthetic w={w}", driver, status.pid,
                          lambda w=w: load_synthetic(driver, data, args.batch_size, w),
                          args.synthetic_repeats or args.repeats)
        finally:
            driver.close()
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
