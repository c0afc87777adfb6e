"""Caption parser throughput (captions/s) and how its cost grows with a caption's length.

Not a test: run it by hand::

    python benchmarks/bench_captions.py                 # myntra-small's attribute names as the vocabulary
    python benchmarks/bench_captions.py --rounds 7      # more rounds (medians are printed)

Texts: the catalog's template captions ("replace navy blue with black", one per distinct text), the
hand-written shopper captions and the labelled real captions (fixtures), parsed one by one, each round over
the whole set. Growth: one caption repeated 1x, 10x and 100x (up to about 60,000 characters), parse steps
(``WorkCounter``) and seconds: linear time means both grow by the same factor as the length.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from readers.captions import Vocabulary, WorkCounter, parse_relative_caption  # noqa: E402
from readers.catalog import MYNTRA, read_catalog  # noqa: E402
from readers.composed import ComposedConfig, build_composed_queries  # noqa: E402
from readers.datasets import myntra_catalog  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "captions"


def _rate(texts: list[str], vocab: Vocabulary, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            parse_relative_caption(text, vocab)
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    records = list(read_catalog(myntra_catalog(), MYNTRA))
    names = {a.name for r in records for a in r.attributes}
    vocab = Vocabulary(names)
    templates = sorted({q.text for q in build_composed_queries(records, ComposedConfig(hash_images=False)).queries})
    free = [json.loads(line)["text"] for name in ("myntra_shopper.jsonl", "real_labelled.jsonl")
            for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    print(f"vocabulary: {len(vocab):,} attribute names (+ the lexicon)")
    print(f"template captions ({len(templates):,} distinct): {_rate(templates, vocab, args.rounds):,.0f} captions/s")
    print(f"free text ({len(free):,} shopper and real captions): {_rate(free, vocab, args.rounds):,.0f} captions/s")

    unit = "the same shirt but in navy blue, not black, without stripes and with long sleeves; "
    print("growth (one caption repeated):")
    base_steps = base_seconds = None
    for times in (7, 70, 700):
        text = unit * times
        work = WorkCounter()
        start = time.perf_counter()
        parse_relative_caption(text, vocab, work=work)
        seconds = time.perf_counter() - start
        base_steps, base_seconds = base_steps or work.steps, base_seconds or seconds
        print(f"  {len(text):>7,} characters: {work.steps:>8,} steps ({work.steps / base_steps:5.1f}x), "
              f"{seconds * 1000:8.1f} ms ({seconds / base_seconds:5.1f}x)")


if __name__ == "__main__":
    main()
