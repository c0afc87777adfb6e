"""One catalog size, measured end to end: generate, first load, train, publish, search, interact.

Called by ``benchmarks/bench_scale.py`` in a process of its own per size (so each size's peak memory is its
own). Every figure comes from running the real code paths on a real local Neo4j that this module starts
in the output folder and stops at the end:

1. **first load**: the generated catalog (``benchmarks/scale/generate.py``) into an empty database with
   :func:`graphdb.bulk.bulk_import` (the offline importer; ``create``: batched CREATE over Bolt);
2. **training**: the graph read back as columns, image features reused from myntra-small's by row,
   the graph model trained with neighbour sampling (and, up to ``--full-train-max``, full-graph as well):
   seconds per epoch, validation time apart, and peak memory;
3. **publish**: bundle (per-layer embeddings), the local refresh's state, the engine generation;
4. **search**: composed test queries encoded as the engine encodes them, then searched in FAISS flat
   (exact), IVF and HNSW and in Neo4j's own vector index (``db.index.vector.queryNodes``): p50/p95 latency
   of one query and recall@10 against exact search;
5. **interactions**: what ``tailor serve`` holds (an :class:`~engine.session.InteractiveSession`): a
   stored query liked (two results) and answered again, then its candidate tagged and searched again,
   each timed from the call to the changed ranking; then the embeddings after all of them compared with
   a full recomputation from the database (the local refresh's error).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import resource
import statistics
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from neo4j import RoutingControl

TAGS = ("long sleeves", "striped", "slim fit", "cotton", "round neck", "black", "white", "formal")
WHO = "bench"


# --- measuring ---------------------------------------------------------------------------------------


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemoryWatch:
    """Samples this process's and the Neo4j JVM's resident memory (and the machine's available memory)
    every ``every`` seconds in a thread; :meth:`phase` gives each phase's peaks."""

    def __init__(self, every: float = 0.2):
        self.every = every
        self.jvm_pid: int | None = None
        self.peaks = {"python": 0.0, "neo4j": 0.0, "min_available": float("inf")}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        self.peaks["python"] = max(self.peaks["python"], rss_mb())
        if self.jvm_pid:
            self.peaks["neo4j"] = max(self.peaks["neo4j"], rss_mb(self.jvm_pid))
        self.peaks["min_available"] = min(self.peaks["min_available"], available_mb())

    @contextmanager
    def phase(self, into: dict[str, Any]) -> Iterator[None]:
        saved = dict(self.peaks)
        self.peaks = {"python": rss_mb(), "neo4j": rss_mb(self.jvm_pid) if self.jvm_pid else 0.0,
                      "min_available": available_mb()}
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.sample()
            into["seconds"] = round(time.perf_counter() - start, 2)
            into["cpu_seconds"] = round(time.process_time() - cpu, 2)  # this process, all its threads
            into["peak_python_mb"] = round(self.peaks["python"])
            into["peak_neo4j_mb"] = round(self.peaks["neo4j"])
            into["min_available_mb"] = round(self.peaks["min_available"])
            self.peaks = {k: max(v, self.peaks[k]) if k != "min_available" else min(v, self.peaks[k])
                          for k, v in saved.items()}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "max_ms": round(float(ms.max()), 2),
            # in call order: the first calls after a server starts are slow (3 s for a like at 10k, measured)
            "each_ms": [round(float(v), 1) for v in ms],
            "p95_ms_after_first": round(float(np.percentile(ms[1:], 95)), 2) if len(ms) > 1 else None}


def jvm_cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


# --- the catalog's truth for simulated training interactions ------------------------------------------


class ColumnTruth(Mapping):
    """Image id -> its catalog attribute names, read from the graph's columns on demand (a million sets
    would take hundreds of megabytes)."""

    def __init__(self, columns: Any):
        col = columns.edges.get("HAS_ATTRIBUTE:catalog")
        self.ids = columns.image_ids
        self.row = {i: n for n, i in enumerate(self.ids)}
        self.names = list(columns.attributes)
        src = np.frombuffer(col.src, dtype=np.int32) if col is not None else np.zeros(0, np.int32)
        dst = np.frombuffer(col.dst, dtype=np.int32) if col is not None else np.zeros(0, np.int32)
        order = np.argsort(src, kind="stable")
        self.dst = dst[order]
        self.ptr = np.zeros(len(self.ids) + 1, dtype=np.int64)
        self.ptr[1:] = np.cumsum(np.bincount(src, minlength=len(self.ids)))

    def __getitem__(self, image_id: str) -> set[str]:
        r = self.row[image_id]
        return {self.names[d] for d in self.dst[self.ptr[r] : self.ptr[r + 1]].tolist()}

    def __iter__(self):
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


# --- one size ------------------------------------------------------------------------------------------


@dataclass
class SizeRun:
    n: int
    out: Path
    features_dir: Path
    catalog: Path
    split_file: Path | None
    epochs: int = 1
    load_method: str = "import"
    full_train_max: int = 10_000
    queries: int = 200
    rounds: int = 30
    neo4j_vector: bool = True
    layer_dtype: str = "float32"
    max_steps: int | None = None  # batches trained an epoch (None: all); the epoch's time is then extrapolated
    seed: int = 0
    result: dict[str, Any] = field(default_factory=dict)


def _server(out: Path):
    import socket

    from graphdb.server.manager import LocalServer

    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        bolt, http = (int(sock.getsockname()[1]) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    return LocalServer(out / "neo4j", bolt_port=bolt, http_port=http)


def _driver_for(server):
    from graphdb.connection import open_driver
    from graphdb.settings import Neo4jSettings

    return lambda: open_driver(Neo4jSettings(uri=server.status_uri, password=server.password()))


def _image_table(run: SizeRun, source_ids: list[str], records) -> np.ndarray:
    """myntra-small's real EfficientNet features, in the order the generator's plan refers to them."""
    from gnn.features.cache import FeatureCache, file_key

    cache = FeatureCache(run.features_dir, "efficientnet-lite0", 1280)
    path = {r.id: r.image_path for r in records}
    keys = [file_key(path[i]) for i in source_ids]
    found, table = cache.get_many(keys)
    if not found.all():
        raise RuntimeError(f"{(~found).sum()} myntra-small images have no cached feature in {run.features_dir}; "
                           "run `tailor featurize` on myntra-small first (or copy its feature cache)")
    return table


def run_size(run: SizeRun, log=print) -> dict[str, Any]:
    from benchmarks.scale.generate import ScaleCatalog

    res = run.result
    res.update({"products": run.n, "cores": os.cpu_count(), "load_average_start": os.getloadavg()[0],
                "heap": os.environ.get("TAILOR_NEO4J_HEAP", "2g"),
                "pagecache": os.environ.get("TAILOR_NEO4J_PAGECACHE", "512m"), "layer_dtype": run.layer_dtype})
    run.out.mkdir(parents=True, exist_ok=True)
    watch = MemoryWatch()
    server = _server(run.out)
    template = ScaleCatalog.from_catalog(run.catalog, run.split_file, seed=run.seed)
    try:
        status = server.start()
        watch.jvm_pid = status.pid
        driver_for = _driver_for(server)
        res["first_load"] = {}
        with watch.phase(res["first_load"]):
            _first_load(run, template, server, driver_for, res["first_load"], log)
        watch.jvm_pid = server.status().pid
        driver = driver_for()
        try:
            _train_publish_search_interact(run, template, driver, watch, log)
        finally:
            driver.close()
    finally:
        watch.close()
        server.stop()
    res["load_average_end"] = os.getloadavg()[0]
    res["peak_rss_mb_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return res


def _earlier_result(run: SizeRun) -> dict[str, Any]:
    """``run.result`` filled with what an earlier run of this size left in ``run.out/result.json``."""
    path = run.out / "result.json"
    run.result.update(json.loads(path.read_text()) if path.exists() else {"products": run.n})
    return run.result


def rerun_interactions(run: SizeRun, log=print) -> dict[str, Any]:
    """The interactions phase again, on the database and published engine an earlier run of this size left
    in ``run.out`` (its ``probes.json``): to measure them on a quiet machine, or after a change to the
    interactive path, without loading and training again. Returns the size's result with the new entry."""
    res = _earlier_result(run)
    saved = run.out / "probes.json"
    probes = [tuple(p) for p in json.loads(saved.read_text())["probes"]] if saved.exists() else None
    from engine.workspace import Workspace

    server = _server(run.out)  # the same database, on ports free now
    watch = MemoryWatch()
    res["interactions_rerun_load_average_start"] = os.getloadavg()[0]
    try:
        watch.jvm_pid = server.start().pid
        driver = _driver_for(server)()
        try:
            if probes is None:  # a run that kept none: test queries read back, in id order
                records, _, _ = driver.execute_query(
                    "MATCH (c:Caption {split: 'test'})-[:MODIFIES]->(i:Image) RETURN i.id AS image, c.text AS text "
                    "ORDER BY c.id LIMIT $n", n=run.queries, routing_=RoutingControl.READ)
                probes = [(r["image"], r["text"]) for r in records]
            _interact(run, Workspace(run.out / "home"), probes, driver, watch, log)
        finally:
            driver.close()
    finally:
        watch.close()
        server.stop()
    res["interactions"]["rerun"] = True
    res["interactions_rerun_load_average_end"] = os.getloadavg()[0]
    return res


def rerun_first_load(run: SizeRun, log=print) -> dict[str, Any]:
    """The first load again, into an empty database of its own (``run.out/first-load``, removed after),
    its entry replacing the one in the size's result: to measure a changed load path without training and
    interacting again. Returns the size's result with the new entry."""
    import shutil

    from benchmarks.scale.generate import ScaleCatalog

    res = _earlier_result(run)
    folder = run.out / "first-load"
    shutil.rmtree(folder, ignore_errors=True)
    alone = dataclasses.replace(run, out=folder, result={})
    folder.mkdir(parents=True)
    watch = MemoryWatch()
    server = _server(folder)
    template = ScaleCatalog.from_catalog(run.catalog, run.split_file, seed=run.seed)
    entry: dict[str, Any] = {"rerun": True, "load_average_start": os.getloadavg()[0]}
    try:
        watch.jvm_pid = server.start().pid
        with watch.phase(entry):
            _first_load(alone, template, server, _driver_for(server), entry, log)
    finally:
        watch.close()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    entry["load_average_end"] = os.getloadavg()[0]
    res["first_load"] = entry
    return res


def _first_load(run: SizeRun, template, server, driver_for, into: dict, log) -> None:
    from graphdb.bulk import bulk_create, bulk_import

    plan = template.feature_plan()
    chunks = ((c.images, c.queries) for c in template.generate(run.n, plan))
    jvm = server.status().pid
    cpu0 = jvm_cpu_seconds(jvm)
    if run.load_method == "create":
        driver = driver_for()
        try:
            report = bulk_create(driver, chunks, source="generated")
        finally:
            driver.close()
        into["jvm_cpu_s"] = round(jvm_cpu_seconds(jvm) - cpu0, 1)
    else:
        report = bulk_import(server, driver_for, chunks, source="generated")
    plan.save(run.out / "features.npz")
    into.update({"method": report.method, "nodes": report.nodes, "relationships": report.relationships,
                 "load_seconds": round(report.seconds, 2),
                 "relationships_per_s": round(report.relationships_per_second),
                 "phases": {k: round(v, 2) for k, v in report.phases.items()}})
    if "import" in report.phases:  # the importer alone (the rest: writing CSV, restarting, building the schema)
        into["import_relationships_per_s"] = round(report.relationships / report.phases["import"])
    log(f"{run.n:,}: first load ({report.method}) {report.relationships:,} relationships in {report.seconds:.1f} s "
        f"= {report.relationships_per_second:,.0f}/s {into['phases']}")


def _text_features(run: SizeRun):
    from gnn.features.cache import FeatureCache, TextFeatures
    from gnn.features.encoders import text_encoder

    return TextFeatures(FeatureCache(run.features_dir, "all-MiniLM-L6-v2", 384), lambda: text_encoder("minilm"))


def _graph_features(run: SizeRun, columns, template, texts) -> dict[str, Any]:
    from benchmarks.scale.generate import FeaturePlan
    from gnn.features.rows import FeatureRows

    plan = FeaturePlan.load(run.out / "features.npz")
    if columns.image_ids != [f"p{k:07d}" for k in range(len(columns.image_ids))]:
        raise RuntimeError("the exported images are not the generated ones in order")
    table = _image_table(run, plan.source_ids, template.records)
    first, second, weight = plan.arrays()
    return {"Image": FeatureRows(table, first, second, weight),
            "Caption": FeatureRows.of_texts(columns.caption_texts, texts.encode_texts),
            "Attribute": texts.encode_texts(list(columns.attributes))}


def _config(run: SizeRun, sampler: str):
    from gnn.config import ExperimentConfig
    from gnn.training.fit import model_config

    config = model_config("graph_catalog", ExperimentConfig())
    config.train.epochs = run.epochs
    config.train.sampler = sampler
    config.train.seed = run.seed
    if sampler == "neighbour":
        config.train.max_steps_per_epoch = run.max_steps
    config.simulation.like_pool = 20_000
    config.retrieval.layer_dtype = run.layer_dtype
    return config


def _train_publish_search_interact(run: SizeRun, template, driver, watch: MemoryWatch, log) -> None:
    from gnn.data.graph import build_graph_tensors_from_columns
    from gnn.training.fit import fit_model
    from graphdb.export import export_graph_columns

    res = run.result
    texts = _text_features(run)
    res["export"] = {}
    with watch.phase(res["export"]):
        columns = export_graph_columns(driver)
        features = _graph_features(run, columns, template, texts)
        config = _config(run, "neighbour")
        g = build_graph_tensors_from_columns(columns, features, config.graph)
        truth = ColumnTruth(columns)
    res["export"].update({"edges": columns.num_edges, "read_seconds": round(columns.seconds, 2)})
    log(f"{run.n:,}: graph read back as columns in {columns.seconds:.1f} s ({columns.num_edges:,} edges)")
    if list(g.ids["Image"]) != columns.image_ids:
        raise RuntimeError("the graph tensors' images are not the exported ones in order")
    image_paths = columns.image_paths  # the bundle's, as the database holds them (interned: ~9k strings)
    del columns
    gc.collect()
    trained = {}
    for sampler in ("neighbour", "full"):
        if sampler == "full" and run.n > run.full_train_max:
            continue
        config = _config(run, sampler)
        res[f"train_{sampler}"] = entry = {}
        with watch.phase(entry):
            fitted = fit_model("graph_catalog", g, config, run.out / "checkpoints", log=lambda s: None, truth=truth)
        hist = fitted.meta["history"]
        seconds = statistics.median(h["seconds"] for h in hist)
        validation = statistics.median(h.get("eval_seconds", 0.0) for h in hist)
        steps, per_epoch = hist[-1].get("steps", 0), hist[-1].get("steps_per_epoch", 0)
        entry.update({"epochs": len(hist), "seconds_per_epoch": round(seconds, 2),
                      "validation_seconds": round(validation, 2), "val_id_R@10": round(hist[-1]["val_id_r10"], 1),
                      "train_queries": len(g.queries["train"]), "steps": steps, "steps_per_epoch": per_epoch})
        if steps and steps < per_epoch:  # a share of the epoch was timed: the whole one, extrapolated
            entry["timed_seconds"] = entry["seconds_per_epoch"]
            entry["seconds_per_epoch"] = round((seconds - validation) * per_epoch / steps + validation, 2)
            entry["extrapolated_from_steps"] = steps
        log(f"{run.n:,}: training ({sampler}) {entry['seconds_per_epoch']} s an epoch "
            + (f"(extrapolated from {steps} of its {per_epoch} batches) " if "timed_seconds" in entry else "")
            + f"(validation {entry['validation_seconds']} s), peak {entry['peak_python_mb']} MB, "
            f"val id R@10 {entry['val_id_R@10']}")
        trained[sampler] = fitted
        gc.collect()
    fitted = trained["neighbour"]
    ws = _publish(run, fitted, g, image_paths, texts, driver, watch, log)
    test = g.queries["test"].with_targets(run.queries, run.seed)
    asked = [(g.ids["Caption"][int(c)], g.ids["Image"][int(a)]) for c, a in zip(test.caption, test.candidate, strict=True)]
    del trained, fitted, g, truth, features
    gc.collect()
    text_of = _caption_texts(driver, [c for c, _ in asked])
    probes = [(candidate, text_of[caption]) for caption, candidate in asked]  # (candidate image, caption text)
    write_json(run.out / "probes.json", {"probes": probes})  # what a rerun of the interactions asks again
    _search(run, ws, texts, probes, driver, watch, log)
    _interact(run, ws, probes, driver, watch, log)


def _caption_texts(driver, ids: list[str]) -> dict[str, str]:
    records, _, _ = driver.execute_query("UNWIND $ids AS id MATCH (c:Caption {id: id}) RETURN c.id AS id, c.text AS t",
                                         ids=ids)
    return {r["id"]: r["t"] for r in records}


def _publish(run: SizeRun, fitted, g, image_paths: list[str], texts, driver, watch, log):
    """The engine generation the session will load: what ``tailor train`` publishes, with the local
    refresh's state built in the same pass (so the first like is already local). ``image_paths``: the
    images' paths as the database holds them; a bundle path that differs from the database's is a catalog
    change to the live engine (a new photo), which takes the full path."""
    import dataclasses

    from engine.live import SAFETY_MARGIN
    from engine.published import BaseGraph, EngineStore, ImageFeatures, Manifest, PublishedEngine
    from engine.workspace import Workspace
    from gnn.checkpoint import load_checkpoint
    from gnn.retrieval.local import LocalState
    from gnn.retrieval.search import QueryEngine, build_index, bundle_from_layers, encode_base
    from graphdb.export import server_time

    res = run.result
    res["publish"] = entry = {}
    ws = Workspace(run.out / "home")
    ws.home.mkdir(parents=True, exist_ok=True)
    if not ws.features.exists():
        ws.features.symlink_to(run.features_dir.resolve())
    with watch.phase(entry):
        checkpoint = load_checkpoint(fitted.checkpoint)
        retrieval = dataclasses.replace(checkpoint.config.retrieval, layer_dtype=run.layer_dtype)
        marker = server_time(driver) - SAFETY_MARGIN
        tick = time.perf_counter()
        sub, layers = encode_base(fitted.model, g, getattr(torch, run.layer_dtype))
        bundle = bundle_from_layers(sub, layers, checkpoint.version, image_paths)
        entry["bundle_seconds"] = round(time.perf_counter() - tick, 2)
        tick = time.perf_counter()
        local = LocalState.build(sub, layers, checkpoint.config.graph, retrieval.hub_degree, retrieval.hub_tolerance)
        entry["local_state_seconds"] = round(time.perf_counter() - tick, 2)
        entry["hubs"] = len(local.hub_row)
        tick = time.perf_counter()
        index = build_index(bundle, retrieval)
        entry["index_seconds"] = round(time.perf_counter() - tick, 2)
        config = checkpoint.config.to_dict()
        config["retrieval"] = dataclasses.asdict(retrieval)
        encoders = {"image": {"config": "efficientnet-lite0", "name": "efficientnet-lite0", "dim": 1280},
                    "text": {"config": "minilm", "name": texts.name, "dim": texts.dim}}
        manifest = Manifest(0, checkpoint.version, "graph_catalog", config, fitted.meta.get("data", {}), {},
                            encoders)
        image_features = ImageFeatures(list(g.ids["Image"]), g.features["Image"])
        engine = PublishedEngine(manifest, checkpoint, QueryEngine(fitted.model, bundle, index, texts), image_features,
                                 BaseGraph(None, marker, local))
        tick = time.perf_counter()
        folder = engine.save(EngineStore(ws.engine), model_file=fitted.checkpoint)
        entry["save_seconds"] = round(time.perf_counter() - tick, 2)
        entry["files_mb"] = {p.name: round(p.stat().st_size / 2**20, 1) for p in folder.iterdir()}
    log(f"{run.n:,}: published in {entry['seconds']} s ({entry['hubs']} hubs; files {entry['files_mb']})")
    del engine, bundle, layers, sub, local, index
    gc.collect()
    return ws


def _search(run: SizeRun, ws, texts, probes: list[tuple[str, str]], driver, watch, log) -> None:
    from engine.pipeline import load_published
    from gnn.retrieval.index import ImageIndex, IndexSpec

    res = run.result
    res["search"] = entry = {}
    with watch.phase(entry):
        engine = load_published(ws, verify=False)
        searcher = engine.searcher
        vectors, encode = [], []
        for candidate, text in probes:
            tick = time.perf_counter()
            vectors.append(searcher.query_vector(candidate, text, searcher.parse(text))[0])
            encode.append(time.perf_counter() - tick)
        entry["encode_query"] = percentiles(encode)
        q = np.stack(vectors)
        final = searcher.bundle.image_layers[-1]
        ids = searcher.bundle.image_ids
        exclude = [c for c, _ in probes]
        exact = None
        for name, spec in (("flat", IndexSpec("flat")), ("ivf", IndexSpec("ivf")), ("hnsw", IndexSpec("hnsw"))):
            tick = time.perf_counter()
            index = ImageIndex(final.shape[-1], spec)
            if spec.kind == "ivf":
                index.add(ids, final.float().numpy())
            else:
                for a in range(0, len(ids), 1 << 17):
                    index.add(ids[a : a + (1 << 17)], final[a : a + (1 << 17)].float().numpy())
            built = time.perf_counter() - tick
            hits, lat = _timed_searches(index, q, exclude)
            if exact is None:
                exact = hits
            recall = _recall_at_10(hits, exact)
            entry[name] = {"build_seconds": round(built, 2), **percentiles(lat), "recall@10_vs_exact": round(recall, 4)}
            log(f"{run.n:,}: search {name}: p50 {entry[name]['p50_ms']} ms p95 {entry[name]['p95_ms']} ms, "
                f"recall@10 vs exact {recall:.3f} (built in {built:.1f} s)")
            if spec.kind == "hnsw":  # the same graph searched wider: what recall more candidates buy
                index.spec = dataclasses.replace(spec, hnsw_ef_search=4 * spec.hnsw_ef_search)
                hits, lat = _timed_searches(index, q, exclude)
                recall = _recall_at_10(hits, exact)
                wide = f"hnsw_ef{index.spec.hnsw_ef_search}"
                entry[wide] = {**percentiles(lat), "recall@10_vs_exact": round(recall, 4)}
                log(f"{run.n:,}: search {wide}: p50 {entry[wide]['p50_ms']} ms p95 {entry[wide]['p95_ms']} ms, "
                    f"recall@10 vs exact {recall:.3f}")
            del index
            gc.collect()
        lat = []
        for candidate, text in probes[:100]:  # the published engine's search: text in, ranked ids out
            tick = time.perf_counter()
            searcher.search(candidate, text, 10)
            lat.append(time.perf_counter() - tick)
        entry["engine_search"] = percentiles(lat)
        if run.neo4j_vector:
            try:
                entry["neo4j_vector"] = _neo4j_vector(driver, ids, final, q, exclude, exact, log, run.n)
            except Exception as err:  # a server-side failure is a finding; the other figures still count
                entry["neo4j_vector"] = {"failed": f"{type(err).__name__}: {err}"[:1000]}
                log(f"{run.n:,}: Neo4j vector index failed: {entry['neo4j_vector']['failed']}")
        del engine, searcher, final
        gc.collect()


def _timed_searches(index, q: np.ndarray, exclude: list[str]) -> tuple[list[list[str]], list[float]]:
    """Each query's top 10 (its candidate left out) and the seconds each search took."""
    hits, lat = [], []
    for i in range(len(q)):
        tick = time.perf_counter()
        hits.append([h for h, _ in index.search(q[i : i + 1], 10, exclude=[exclude[i]])[0]])
        lat.append(time.perf_counter() - tick)
    return hits, lat


def _recall_at_10(hits: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(h) & set(e)) / 10 for h, e in zip(hits, exact, strict=True)]))


def _neo4j_vector(driver, ids, final, q, exclude, exact, log, n) -> dict[str, Any]:
    """Neo4j's own vector index (HNSW in Lucene) over the same embeddings, queried over Bolt."""
    out: dict[str, Any] = {}
    tick = time.perf_counter()
    vectors = torch.nn.functional.normalize(final.float(), dim=-1)
    for a in range(0, len(ids), 5000):
        rows = [[i, v] for i, v in zip(ids[a : a + 5000], vectors[a : a + 5000].tolist(), strict=True)]
        driver.execute_query("UNWIND $rows AS r MATCH (n:Image {id: r[0]}) "
                             "CALL db.create.setNodeVectorProperty(n, 'embedding', r[1])", rows=rows)
    out["write_seconds"] = round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    driver.execute_query("CREATE VECTOR INDEX image_embedding IF NOT EXISTS FOR (n:Image) ON n.embedding "
                         "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine'}}",
                         dim=int(final.shape[-1]))
    driver.execute_query("CALL db.awaitIndexes(7200)")
    out["index_seconds"] = round(time.perf_counter() - tick, 1)
    # queryNodes' k is also how many candidates Lucene's HNSW keeps while searching (its ef): 11 is what
    # a top 10 without the candidate needs; 100, cut to 10, is what buys recall.
    for k in (11, 100):
        hits, lat = [], []
        for i in range(len(q)):
            tick = time.perf_counter()
            records, _, _ = driver.execute_query(
                "CALL db.index.vector.queryNodes('image_embedding', $k, $v) YIELD node RETURN node.id AS id",
                k=k, v=q[i].tolist(), routing_=RoutingControl.READ)
            lat.append(time.perf_counter() - tick)
            hits.append([r["id"] for r in records if r["id"] != exclude[i]][:10])
        recall = _recall_at_10(hits, exact)
        key = "" if k == 11 else f"_k{k}"
        out.update({f"p50_ms{key}": percentiles(lat)["p50_ms"], f"p95_ms{key}": percentiles(lat)["p95_ms"],
                    f"recall@10_vs_exact{key}": round(recall, 4)})
        log(f"{n:,}: Neo4j vector index (k={k}): p50 {out[f'p50_ms{key}']} ms p95 {out[f'p95_ms{key}']} ms, "
            f"recall@10 vs exact {recall:.3f} (write {out['write_seconds']} s, index {out['index_seconds']} s)")
    return out


def _interact(run: SizeRun, ws, probes: list[tuple[str, str]], driver, watch, log) -> None:
    from engine.session import InteractiveSession
    from graphdb.interactions import remove_interactions, tag_image

    res = run.result
    res["interactions"] = entry = {}
    rng = random.Random(run.seed)
    with watch.phase(entry):
        tick = time.perf_counter()
        session = InteractiveSession(ws, driver, background_save=True)
        entry["engine_load_seconds"] = round(time.perf_counter() - tick, 2)
        tick = time.perf_counter()  # what `tailor serve` does before it takes requests
        entry["warm_up"] = session.warm_up()
        entry["warm_up_seconds"] = round(time.perf_counter() - tick, 2)
        log(f"{run.n:,}: session open in {entry['engine_load_seconds']} s, warmed up in {entry['warm_up_seconds']} s "
            f"({', '.join(entry['warm_up'])})")
        engine = session.engine
        like_s, tag_s, query_s, save_s, changed = [], [], [], [], {"like": 0, "tag": 0}
        parts: dict[str, list[float]] = {}
        for candidate, text in rng.sample(probes, min(run.rounds, len(probes))):
            tick = time.perf_counter()
            answer = session.query(candidate, text, 10, who=WHO)
            query_s.append(time.perf_counter() - tick)
            before = [r["id"] for r in answer["results"]]
            tick = time.perf_counter()
            out = session.like(answer["query_id"], before[8:10], who=WHO, k=10)
            like_s.append(time.perf_counter() - tick)
            changed["like"] += [r["id"] for r in out["results"]] != before
            for k, v in out["seconds"].items():
                parts.setdefault(f"like: {k}", []).append(v)
            # the sync as a whole, and what is not the sync (the graph write and the new answer)
            parts.setdefault("like: sync", []).append(out["refresh_seconds"])
            parts.setdefault("like: write + answer", []).append(like_s[-1] - out["refresh_seconds"])
            save_s.append(session.live.flush())
            # The engine as it is now (a full sync swaps in a new one); its search holds off a local
            # refresh by itself (QueryEngine.guard).
            before = [i for i, _ in session.engine.search(candidate, text, 10).hits]
            tag = rng.choice(TAGS)
            tick = time.perf_counter()
            tag_image(driver, candidate, tag, who=WHO, phrase=f"that one is {tag}")
            synced = session.sync()
            after = [i for i, _ in session.engine.search(candidate, text, 10).hits]
            tag_s.append(time.perf_counter() - tick)
            changed["tag"] += after != before
            for k, v in synced["seconds"].items():
                parts.setdefault(f"tag: {k}", []).append(v)
            save_s.append(session.live.flush())
        entry.update({"like": percentiles(like_s), "tag": percentiles(tag_s), "query": percentiles(query_s),
                      "save_afterwards": percentiles(save_s), "rankings_changed": changed,
                      "parts_p50_ms": {k: round(1000 * statistics.median(v), 2) for k, v in parts.items()},
                      "parts_each_ms": {k: [round(1000 * x, 1) for x in v] for k, v in parts.items()}})
        log(f"{run.n:,}: like p50 {entry['like']['p50_ms']} ms p95 {entry['like']['p95_ms']} ms; tag p50 "
            f"{entry['tag']['p50_ms']} ms p95 {entry['tag']['p95_ms']} ms; save afterwards p50 "
            f"{entry['save_afterwards']['p50_ms']} ms; changed {changed}")
        engine = session.engine  # the one the interactions left (a full sync would have swapped it)
        session.close()
        published = session.live.published
        live = {"final": engine.bundle.image_layers[-1].clone(), "row": engine.bundle.image_row,
                "dtype": engine.bundle.image_layers.dtype, "model": engine.model, "texts": engine.text_encoder,
                "features": published.image_features, "graph": published.config.graph,
                "tolerance": published.manifest.config.get("retrieval", {}).get("hub_tolerance")}
        del session, engine, published
        gc.collect()
        entry["error_vs_full"] = _error_vs_full(live, driver, run)
        log(f"{run.n:,}: local refresh vs full recomputation: {entry['error_vs_full']}")
        entry["cleanup"] = remove_interactions(driver, WHO)


@torch.no_grad()
def _error_vs_full(live: dict[str, Any], driver, run: SizeRun) -> dict[str, Any]:
    """The live engine's final embeddings after the interactions (``live``) against the base graph read
    whole from the database and run through the R-GCN: what a full sync would give."""
    from gnn.data.graph import build_graph_tensors_from_columns
    from gnn.features.rows import FeatureRows
    from graphdb.export import export_graph_columns

    columns = export_graph_columns(driver, base_only=True)
    texts = live["texts"]
    image_rows = [live["features"].row[i] for i in columns.image_ids]
    image_features = live["features"].matrix
    image_features = image_features.subset(image_rows) if isinstance(image_features, FeatureRows) \
        else image_features[image_rows]
    features = {"Image": image_features,
                "Caption": texts.encode_texts(columns.caption_texts) if columns.caption_ids
                else np.zeros((0, texts.dim), np.float32),
                "Attribute": texts.encode_texts(list(columns.attributes))}
    g = build_graph_tensors_from_columns(columns, features, live["graph"])
    rows = torch.tensor([live["row"][i] for i in columns.image_ids])
    del columns
    # Rounded as the published layers are, layer by layer.
    full = live["model"].encoder.layerwise(g, dtype=live["dtype"], last_only=True)[: len(rows)]
    mine = live["final"][rows].float()
    diff = (mine - full).abs().amax(dim=1)
    cos = torch.nn.functional.cosine_similarity(mine, full, dim=1)
    return {"max_abs": float(diff.max()), "images_over_1e-4": int((diff > 1e-4).sum()),
            "images_over_1e-3": int((diff > 1e-3).sum()), "min_cosine": float(cos.min()),
            "hub_tolerance": live["tolerance"], "layer_dtype": run.layer_dtype}


def write_json(path: Path, data: dict) -> None:
    from readers.files import atomic_write_json

    atomic_write_json(path, json.loads(json.dumps(data, default=float)))
