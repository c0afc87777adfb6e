"""From load to searchable: new products brought into a trained engine without retraining, featurising
included.

Set-up (not timed): a local Neo4j of its own in a temporary folder (or ``--uri`` of an empty database),
the catalog loaded without ``--new`` products (a seeded sample of products whose photo no kept product
shares byte for byte), a graph model trained on that and published (``--epochs``; a checkpoint of the
same config and data is reused from ``--checkpoints``). The workspace's image feature cache holds every
kept product and none of the new ones (copied from ``--features``, the new products' entries left out),
so their photos go through the encoder for real.

Timed, ``--repeats`` times: ``tailor load catalog products.csv --index`` as a fresh process (what a shop's
daily job runs: reading the whole catalog, creating the new products and their composed queries, then the
sync: features for the new photos, one R-GCN pass, FAISS rows, the new generation saved and the
embeddings written back). Afterwards every new product must be in the published index with its features.
Between repeats the new products are retired again (``tailor retire --index``) and the cache entries
their photos got are removed, untimed. One more run in this process gives the breakdown.

    python benchmarks/bench_catalog.py --new 600 --repeats 3

Prints medians, the machine's load average before each run and its core count: the figures are only
as quiet as the machine was.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from readers.datasets import myntra_catalog  # noqa: E402
from readers.files import atomic_write_json  # noqa: E402


def pick_new(records, n: int, seed: int) -> list[str]:
    """``n`` product ids whose photo no other product shares (else the cache would answer for them)."""
    from readers.composed import hash_images

    digests = hash_images(records)
    copies = Counter(d for d in digests.values() if d is not None)
    shared = {d for d, n in copies.items() if n > 1}
    unique = sorted(i for i, d in digests.items() if d is not None and d not in shared)
    return sorted(random.Random(seed).sample(unique, n))


def copy_features(source: Path, target: Path, records, leave_out: set[str], image_model: str, dim: int) -> int:
    """Text caches copied whole; the image cache rebuilt from ``source`` without ``leave_out``'s photos."""
    from gnn.features.cache import FeatureCache, file_key, safe_dirname

    target.mkdir(parents=True, exist_ok=True)
    for folder in source.iterdir():
        if folder.is_dir() and folder.name != safe_dirname(image_model):
            shutil.copytree(folder, target / folder.name, dirs_exist_ok=True)
    src = FeatureCache(source, image_model, dim)
    dst = FeatureCache(target, image_model, dim)
    keys = [file_key(r.image_path) for r in records if r.id not in leave_out]
    found, vectors = src.get_many(keys)
    dst.put_many([k for k, ok in zip(keys, found, strict=True) if ok], vectors[found])
    return int(found.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=myntra_catalog())
    parser.add_argument("--new", type=int, default=600, help="new products per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="training budget of the engine (not timed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", type=Path, default=None,
                        help="a feature cache to start from (default $TAILOR_HOME/features)")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="where trained models are kept and reused (default $TAILOR_HOME/checkpoints)")
    parser.add_argument("--uri", default=None, help="an empty Neo4j to use instead of starting one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from engine.pipeline import load_published, train_and_publish
    from engine.session import InteractiveSession
    from engine.workspace import Workspace
    from gnn.config import ExperimentConfig
    from gnn.features.cache import FeatureCache, file_key
    from graphdb.catalog import image_count, retire_images
    from graphdb.connection import open_driver
    from graphdb.loaders import load_catalog
    from graphdb.schema import apply_schema
    from graphdb.settings import Neo4jSettings, settings_from_env, tailor_home
    from readers.catalog import read_catalog

    home = tailor_home()
    features = args.features or home / "features"
    checkpoints = args.checkpoints or home / "checkpoints"
    scratch = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    ws = Workspace(scratch / "home")
    ws.home.mkdir(parents=True)
    checkpoints.mkdir(parents=True, exist_ok=True)
    os.symlink(checkpoints, ws.checkpoints)
    server = None
    if args.uri:
        settings = settings_from_env(uri=args.uri)
    else:
        from graphdb.server.manager import LocalServer
        from tests.helpers import free_ports

        bolt, http = free_ports(2)
        server = LocalServer(scratch / "neo4j", bolt_port=bolt, http_port=http)
        status = server.start()
        settings = Neo4jSettings(uri=status.uri, password=server.password(), local=True, data_dir=scratch / "neo4j")
    env = {**os.environ, "TAILOR_HOME": str(ws.home), "NEO4J_URI": settings.uri, "NEO4J_USER": settings.user,
           "NEO4J_PASSWORD": settings.password, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    driver = open_driver(settings)
    results: dict[str, object] = {"new": args.new, "cores": os.cpu_count()}
    try:
        apply_schema(driver)
        if image_count(driver):
            raise SystemExit(f"{settings.uri} is not empty: the benchmark loads a catalog of its own")
        records = list(read_catalog(args.catalog))
        new = pick_new(records, args.new, args.seed)
        config = ExperimentConfig.from_file(None, epochs=args.epochs, seed=args.seed)
        image_model, dim = "efficientnet-lite0", 1280
        kept = copy_features(features, ws.features, records, set(new), image_model, dim)
        print(f"{len(records):,} products, {len(new)} new; image cache: {kept:,} kept products' photos")
        split = ws.split_file(args.catalog)
        load_catalog(driver, args.catalog, split, exclude=set(new))
        engine = train_and_publish(driver, ws, "graph_catalog", config, log=print)
        print(f"engine: {len(engine.bundle.image_ids):,} products indexed (model {engine.version})")
        pristine = scratch / "image-cache"
        shutil.copytree(ws.features / image_model, pristine)
        new_keys = {file_key(r.image_path) for r in records if r.id in set(new)}
        assert not new_keys & set(FeatureCache(ws.features, image_model, dim).keys()), "new photos are cached"

        runs = []
        for repeat in range(args.repeats):
            load = os.getloadavg()[0]
            tick = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "cli", "load", "catalog", str(args.catalog), "--index"],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - tick
            if done.returncode:
                raise SystemExit(f"tailor load catalog --index failed:\n{done.stdout}\n{done.stderr}")
            published = load_published(ws)
            indexed = set(published.bundle.image_ids)
            missing = [i for i in new if i not in indexed or i not in published.image_features]
            computed = len(set(FeatureCache(ws.features, image_model, dim).keys()) & new_keys)
            assert not missing, f"not searchable after the load: {missing[:5]}"
            runs.append({"seconds": round(seconds, 2), "load_average": round(load, 2), "computed": computed})
            print(f"run {repeat + 1}: {seconds:.1f} s from `tailor load catalog --index` to {len(new)} new products "
                  f"searchable ({computed} photos featurised; load average {load:.1f} on {os.cpu_count()} cores)")
            retire_images(driver, new)
            subprocess.run([sys.executable, "-m", "cli", "sync"], cwd=ROOT, env=env, check=True,
                           capture_output=True)
            shutil.rmtree(ws.features / image_model)
            shutil.copytree(pristine, ws.features / image_model)
        results["runs"] = runs
        results["median_seconds"] = statistics.median(r["seconds"] for r in runs)

        # The same once more in this process, for where the time goes.
        load = os.getloadavg()[0]
        tick = time.perf_counter()
        summary = load_catalog(driver, args.catalog, split)
        load_seconds = time.perf_counter() - tick
        session = InteractiveSession(ws, driver)
        opened = time.perf_counter() - tick - load_seconds
        out = session.sync()
        session.close()
        total = time.perf_counter() - tick
        results["in_process"] = {"load_average": round(load, 2), "load_catalog": round(load_seconds, 2),
                                 "engine_open": round(opened, 2), "sync": out["seconds"],
                                 "save_and_write_back": out["save_seconds"], "total": round(total, 2),
                                 "new_products": len(summary.new_images),
                                 "features_computed": out["catalog"]["features_computed"]}
        print(f"in one process: {total:.1f} s = load {load_seconds:.1f} + engine open {opened:.1f} + sync "
              + ", ".join(f"{k} {v:.2f}" for k, v in out["seconds"].items())
              + f" + save and write-back {out['save_seconds']:.2f} s "
              f"({out['catalog']['features_computed']} photos featurised; load average {load:.1f})")
        print(f"median from load to searchable, {len(new)} new products: {results['median_seconds']:.1f} s "
              f"over {len(runs)} runs (fresh process each; runs {[r['seconds'] for r in runs]})")
    finally:
        driver.close()
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        atomic_write_json(args.json, results)


if __name__ == "__main__":
    # A kill runs the clean-up too (the server this started is stopped, its folder removed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
