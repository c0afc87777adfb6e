"""Pixel colour features (gnn.attributes.colour): images per second from a cold cache, and the machine's
load while it ran. Not a test: run it by hand::

    python benchmarks/bench_colour.py                       # every myntra-small image, a fresh cache
    python benchmarks/bench_colour.py --limit 1000 --workers 1,2

Each run featurises into a new temporary cache (nothing is reused), through the same path
``tailor attributes predict`` takes (``featurize_colour``: read, hash, decode, mask, histograms, store).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnn.attributes.colour import PixelColourEncoder, featurize_colour  # noqa: E402
from readers.datasets import myntra_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=myntra_catalog().parent / "images")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", default="2", help="comma-separated thread counts to try")
    args = parser.parse_args()
    paths = sorted(args.images.glob("*.jpg"))[: args.limit]
    if not paths:
        raise SystemExit(f"no .jpg files under {args.images}")
    items = [(p.stem, str(p)) for p in paths]
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as cache:
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            result = featurize_colour(items, Path(cache), encoder=PixelColourEncoder(workers=workers))
            seconds = time.perf_counter() - start
            load_after = os.getloadavg()[0]
        print(f"{len(items):,} images, {workers} worker(s): {seconds:.1f} s, {len(items) / seconds:.1f} images/s "
              f"({len(result.failed)} failed); load average {load_before:.1f} -> {load_after:.1f} on "
              f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
