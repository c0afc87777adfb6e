"""`tailor query | like | tag` as fresh processes from the shell, with a `tailor serve` running and without.

With a server, a command only reads ``$TAILOR_HOME/serve.json`` and sends its request (cli/client.py: no
torch, no engine); without one it loads Python, torch and the engine first. Each figure is the wall time of
the whole process, from its start to its exit, as a shell user sees it.

Not a test: run it by hand on a workspace with a published model (``tailor train``)::

    TAILOR_HOME=/tmp/th1 python benchmarks/bench_cli_server.py --runs 20 --local 3

It starts its own server (``--port``), or uses the one running (``--use-running``). Everything written carries
``who = "bench"`` and is removed at the end (the next sync, or server start, brings the index in line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphdb.settings import tailor_home  # noqa: E402
from web.discovery import read_server_file  # noqa: E402

WHO = "bench"
TEXTS = ("in black", "make it blue", "in white please", "not red, in green", "I want it in navy blue")


def timed(args: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", *args, "--json", "--who", WHO], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tailor {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"{name:<38} n={len(ms):>3}  p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  "
            f"min {ms[0]:7.1f}  max {ms[-1]:7.1f}")


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tailor serve exited with {proc.returncode}")
        info = read_server_file(tailor_home())
        if info is not None and info.pid == proc.pid:
            try:
                with urllib.request.urlopen(info.url + "/health", timeout=5):
                    return proc
            except OSError:
                pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("tailor serve did not start within 600 s")


def candidates(n: int) -> list[str]:
    from cli.db import connect

    with connect() as driver:
        records, _, _ = driver.execute_query(
            "MATCH (c:Caption {split: 'test'})-[:MODIFIES]->(i:Image) RETURN DISTINCT i.id AS id ORDER BY id LIMIT $n",
            n=n)
    return [r["id"] for r in records]


def clean_up() -> None:
    from cli.db import connect
    from graphdb.interactions import remove_interactions

    with connect() as driver:
        removed = remove_interactions(driver, WHO)
    print(f"removed what the benchmark wrote: {removed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="`tailor query` runs through the server")
    parser.add_argument("--likes", type=int, default=5, help="`tailor like` and `tailor tag` runs through it")
    parser.add_argument("--local", type=int, default=3, help="`tailor query --local` runs (no server)")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--use-running", action="store_true", help="use the server that is running")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    images = candidates(max(args.runs, args.likes))
    proc = None
    if args.use_running:
        if read_server_file(tailor_home()) is None:
            raise SystemExit(f"no server is running for {tailor_home()}")
    else:
        proc = start_server(args.port)
    figures: dict[str, list[float]] = {"query": [], "like": [], "tag": [], "query --local": []}
    try:
        timed(["query", "--image", images[0], "--text", TEXTS[0]])  # warm-up: first search, first explain
        answers = []
        for n in range(args.runs):
            seconds, out = timed(["query", "--image", images[n % len(images)], "--text", TEXTS[n % len(TEXTS)]])
            assert out.get("server"), "the query did not go through the server"
            figures["query"].append(seconds)
            answers.append(out)
        for n in range(args.likes):
            out = answers[n % len(answers)]
            seconds, liked = timed(["like", "--query", out["query_id"], "--images", out["results"][4]["id"]])
            assert liked.get("server")
            figures["like"].append(seconds)
            seconds, tagged = timed(["tag", "that one is black", "--image", out["results"][0]["id"]])
            figures["tag"].append(seconds)
        for n in range(args.local):
            seconds, out = timed(["query", "--local", "--image", images[n % len(images)], "--text", TEXTS[0]])
            assert "server" not in out
            figures["query --local"].append(seconds)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        clean_up()
    print(f"workspace {tailor_home()}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    for name, seconds in figures.items():
        if seconds:
            print(summary(f"tailor {name}" + (" (server)" if name != "query --local" else " (no server)"), seconds))
    if args.json:
        args.json.write_text(json.dumps({k: [round(s, 4) for s in v] for k, v in figures.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
