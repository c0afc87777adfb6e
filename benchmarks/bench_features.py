"""Throughput of image/text featurisation, and of the feature cache, on real catalog images.

    python benchmarks/bench_features.py                      # 512 myntra-small images, 3 repeats
    python benchmarks/bench_features.py --n 256 --repeats 5 --batch-sizes 1,2,4,8,16

Prints images/s (median and best over repeats, and the median per CPU-second of this process; repeats
of all configurations are interleaved so that load from other processes hits them alike) for:
- the naive baseline: the library EfficientNet-Lite0 in a plain loop (PIL decode, NCHW float, batch 64,
  torch's intra-op threads);
- the optimised encoder at several batch sizes, with 1 worker (intra-op threads) and with one
  single-threaded worker per core (the default);
then MiniLM captions/s (sentence-transformers' own ``encode()`` vs ours, product names as captions),
and cold/warm feature-cache runs of ``featurize_images``/``featurize_texts``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from gnn.features.cache import FeatureCache  # noqa: E402
from gnn.features.encoders import EfficientNetLite0Encoder, image_encoder, text_encoder  # noqa: E402
from gnn.features.featurize import featurize_images, featurize_texts  # noqa: E402
from readers.datasets import myntra_catalog  # noqa: E402

DATASET = myntra_catalog().parent


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def naive_baseline(paths: list[Path], batch_size: int = 64) -> Callable[[], None]:
    """What a first version does: library model, sequential PIL decode, NCHW, big batches."""
    lib = EfficientNetLite0Encoder(device="cpu", fast=False).net.model.eval()
    lib = lib.to(memory_format=torch.contiguous_format)

    def run() -> None:
        with torch.no_grad():
            for i in range(0, len(paths), batch_size):
                arrs = [
                    np.asarray(Image.open(p).convert("RGB").resize((224, 224)))
                    for p in paths[i : i + batch_size]
                ]
                x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().contiguous()
                feats = lib.extract_features((x - 127.0) / 128.0).mean((2, 3))
                torch.nn.functional.normalize(feats, dim=1).numpy()

    return run


def measure(
    configs: dict[str, tuple[Callable[[], None], int]], repeats: int
) -> dict[str, list[tuple[float, float]]]:
    """Round-robin over configurations; returns (items per wall second, items per CPU second) per repeat.

    Items per CPU second (all threads of this process) is the figure that survives a machine shared with
    other jobs: wall-clock rates there mostly measure the other jobs. Spin-waiting threads count as CPU.
    """
    rates: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    for r in range(repeats):
        for name, (fn, n) in configs.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            rates[name].append((n / (time.perf_counter() - t), n / max(time.process_time() - c, 1e-9)))
        print(f"  repeat {r + 1}/{repeats} done (load {loadavg()})", file=sys.stderr, flush=True)
    return rates


def report(title: str, rates: dict[str, list[tuple[float, float]]], unit: str) -> None:
    print(f"\n{title}")
    print(f"  {'configuration':<44} {'median':>8} {'best':>8} {'per CPU-s':>10}   {unit}, each repeat")
    for name, rs in rates.items():
        wall = [w for w, _ in rs]
        cpu = [c for _, c in rs]
        each = " ".join(f"{x:.1f}" for x in wall)
        print(
            f"  {name:<44} {statistics.median(wall):8.1f} {max(wall):8.1f} {statistics.median(cpu):10.1f}   [{each}]"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=DATASET / "images")
    ap.add_argument("--captions-csv", type=Path, default=DATASET / "products.csv")
    ap.add_argument("--n", type=int, default=512, help="images per run")
    ap.add_argument("--n-texts", type=int, default=1024, help="captions per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", default="2,4,8,16")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()

    paths = sorted(args.images.glob("*.jpg"))[: args.n]
    if not paths:
        sys.exit(f"no images under {args.images}")
    n = len(paths)
    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, {os.cpu_count()} CPUs ({cpu}), "
        f"capability {torch.backends.cpu.get_cpu_capability()}, load {loadavg()}; {n} images from {args.images}"
    )

    # ---- images -----------------------------------------------------------------------------------
    enc = image_encoder("efficientnet-lite0", device="cpu")
    cores = enc.workers
    configs: dict[str, tuple[Callable[[], None], int]] = {}
    if not args.skip_baseline:
        configs["naive: library model, batch 64, NCHW"] = (naive_baseline(paths), n)
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        configs[f"optimised, batch {bs}, 1 worker x {torch.get_num_threads()} threads"] = (
            lambda bs=bs: enc.encode_images(paths, batch_size=bs, workers=1),
            n,
        )
        configs[f"optimised, batch {bs}, {cores} workers x 1 thread"] = (
            lambda bs=bs: enc.encode_images(paths, batch_size=bs, workers=cores),
            n,
        )
    for bs in [int(b) for b in args.batch_sizes.split(",")]:  # warm-up: kernels are built per shape
        for w in (1, cores):
            enc.encode_images(paths[: 2 * bs * w], batch_size=bs, workers=w)
    print(f"\nimages: {len(configs)} configurations x {args.repeats} repeats ...", file=sys.stderr)
    report(f"EfficientNet-Lite0 on {n} images (decode included)", measure(configs, args.repeats), "images/s")

    # ---- texts ------------------------------------------------------------------------------------
    with args.captions_csv.open(newline="") as f:
        texts = [row["productDisplayName"] for row in csv.DictReader(f) if row.get("productDisplayName")]
    texts = texts[: args.n_texts]
    tenc = text_encoder("minilm", device="cpu")
    tenc.encode_texts(texts[:64])
    tconfigs: dict[str, tuple[Callable[[], None], int]] = {
        "naive: SentenceTransformer.encode, batch 32": (
            lambda: tenc.model.encode(texts, batch_size=32, normalize_embeddings=True),
            len(texts),
        )
    }
    for bs in (32, 64, 128):
        for w in (1, tenc.workers):
            label = f"optimised, batch {bs}, " + (
                f"1 worker x {torch.get_num_threads()} threads" if w == 1 else f"{w} workers x 1 thread"
            )
            tconfigs[label] = (
                lambda bs=bs, w=w: tenc.encode_texts(texts, batch_size=bs, workers=w),
                len(texts),
            )
    report(f"all-MiniLM-L6-v2 on {len(texts)} product names", measure(tconfigs, args.repeats), "captions/s")

    # ---- cache: cold (compute + store) vs warm (hash + look up) ------------------------------------
    print("\nfeature cache (featurize_images / featurize_texts, default settings)")
    with tempfile.TemporaryDirectory() as tmp:
        items = [(p.stem, p) for p in paths]
        for label in ("cold", "warm"):
            cache = FeatureCache(Path(tmp), enc.name, enc.dim)  # reopened: the warm run reads from disk
            res = featurize_images(items, enc, cache)
            print(
                f"  images {label}: {n / res.seconds:8.1f} images/s  "
                f"({res.computed} computed, {res.cached} cached, {res.seconds:.2f} s)"
            )
        titems = list(enumerate(texts))
        for label in ("cold", "warm"):
            cache = FeatureCache(Path(tmp), tenc.name, tenc.dim)
            res = featurize_texts(titems, tenc, cache)
            print(
                f"  texts  {label}: {len(texts) / res.seconds:8.1f} captions/s "
                f"({res.computed} computed, {res.cached} cached, {res.seconds:.2f} s)"
            )
    print(f"\nload average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
