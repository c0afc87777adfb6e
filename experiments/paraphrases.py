"""Does the model understand what people type? The test queries in every held-apart phrasing, and the
hand-written shopper captions, each beside the template form and the image-only baseline.

* **Paraphrases**: each test query ("replace navy blue with black") rendered in every phrasing of
  :data:`readers.phrasings.HELD_APART` (none of them seen in training: "swap the navy for black", "black,
  not navy", "a blak one", ...), id R@10 with the parser on (MENTIONS from parsing the text) and off (the
  caption's text features only), beside the template's and image-only's.
* **Shopper captions**: the pairs of ``tests/fixtures/captions/myntra_shopper.jsonl`` as written, in
  template form, as "something similar" (the text says nothing), and image-only.
* **Rule 3**: on queries whose parse is unsure (nothing understood, or low confidence), the model against
  image-only on the same queries.

Gallery: the test images, candidate excluded (as in the recall table). A test caption's text and
MENTIONS are swapped in the graph for each phrasing (:meth:`GraphTensors.with_caption_inputs`); every
text is featurised once through the feature cache.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from experiments.figures import pyplot, save_figure
from gnn.data.graph import GraphTensors, QuerySet
from gnn.data.phrasings import ParsedTexts, caption_changes, parse_texts, rendering_seed
from gnn.nn.baselines import ImageOnly
from gnn.training.evaluation import gallery_rows, rank_queries, recall_at_k, retriever_scorer
from readers.captions import UNSURE_BELOW
from readers.files import atomic_write, atomic_write_json
from readers.phrasings import HELD_APART, TEMPLATE, Phrasing, render

__all__ = ["SHOPPER_FILE", "CaptionSet", "evaluate_captions", "paraphrase_report", "shopper_report",
           "write_paraphrases", "write_shopper"]

SHOPPER_FILE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "captions" / "myntra_shopper.jsonl"
EncodeTexts = Callable[[Sequence[str]], np.ndarray]
KS = (1, 10, 50)


@dataclass
class CaptionSet:
    """Queries (rows of a query set) with one text each."""

    name: str
    queries: QuerySet
    texts: list[str]


def _ranked(model: nn.Module, g: GraphTensors, sets: Sequence[CaptionSet], parsed: ParsedTexts,
            text_row: dict[str, int], parser: bool) -> dict[str, Tensor]:
    """Ranked gallery rows of every set's queries, its captions swapped for its texts (MENTIONS from their
    parse, or none)."""
    out = {}
    rows = gallery_rows(g, "test")
    for s in sets:
        sub, local = g.restrict_captions(s.queries.caption)
        ids = torch.tensor([text_row[t] for t in s.texts], dtype=torch.long)
        features = parsed.features[ids].float()
        if parser:
            pos, role, attr = parsed.mentions_of(ids)
        else:
            pos = role = attr = torch.zeros(0, dtype=torch.long)
        sub = sub.with_caption_inputs(local, features, pos, role, attr)
        q = QuerySet(s.queries.ids, local, s.queries.candidate, s.queries.target, s.queries.groups)
        out[s.name] = rank_queries(retriever_scorer(model, sub), q, rows, max(KS))
    return out


def _hit_rate(ranked: Tensor, target: Tensor, rows: Tensor) -> float | None:
    if not bool(rows.any()):
        return None
    return 100.0 * float((ranked[rows, :10] == target[rows, None]).any(dim=1).float().mean())


def evaluate_captions(model: nn.Module, g: GraphTensors, sets: Sequence[CaptionSet],
                      encode_texts: EncodeTexts) -> dict:
    """Every set with the parser on and off, image-only on the same queries, and what the engine answers
    (``engine``: the parser on, and image-only where the parse is unsure, as
    :meth:`gnn.retrieval.search.QueryEngine.search` falls back). ``unsure`` says, per set, how many parses
    were unsure (nothing added or removed, or confidence below :data:`readers.captions.UNSURE_BELOW`)
    and how the model and image-only do on those queries."""
    texts = sorted({t for s in sets for t in s.texts})
    parsed = parse_texts(texts, encode_texts(texts), g.ids["Attribute"])
    text_row = {t: i for i, t in enumerate(texts)}
    on = _ranked(model, g, sets, parsed, text_row, parser=True)
    off = _ranked(model, g, sets, parsed, text_row, parser=False)
    image_scorer = retriever_scorer(ImageOnly(), g)
    gallery = gallery_rows(g, "test")
    report: dict = {"parser_on": {}, "parser_off": {}, "image_only": {}, "engine": {}, "unsure": {}}
    for s in sets:
        target = s.queries.target
        image = rank_queries(image_scorer, s.queries, gallery, max(KS))
        unsure = torch.tensor([parsed.roles[text_row[t]].unsure for t in s.texts], dtype=torch.bool)
        engine = torch.where(unsure[:, None], image, on[s.name])
        for key, ranked in (("parser_on", on[s.name]), ("parser_off", off[s.name]), ("image_only", image),
                            ("engine", engine)):
            report[key][s.name] = {**recall_at_k(ranked, target, g.image_title, KS), "queries": len(target)}
        n = int(unsure.sum())
        report["unsure"][s.name] = {
            "queries": n, "share": round(n / max(len(s.texts), 1), 4),
            "model_id_R@10": _hit_rate(on[s.name], target, unsure),
            "model_parser_off_id_R@10": _hit_rate(off[s.name], target, unsure),
            "image_only_id_R@10": _hit_rate(image, target, unsure),
        }
    report["unsure_below"] = UNSURE_BELOW
    return report


# --- the paraphrase benchmark ----------------------------------------------------------------------


def phrased_sets(g: GraphTensors, qs: QuerySet, phrasings: Sequence[Phrasing] = HELD_APART, seed: int = 0,
                 template: bool = True) -> list[CaptionSet]:
    """``qs``'s queries (those that change one value) in each phrasing. Typos and spellings are drawn per
    change and phrasing (queries asking the same change read the same text) from seeds training never
    uses."""
    changes = caption_changes(g, qs.caption.tolist())
    keep = [i for i, c in enumerate(qs.caption.tolist()) if c in changes]
    qs = qs.subset(keep)
    out = []
    for ph in ([TEMPLATE] if template else []) + list(phrasings):
        texts = []
        for cap in qs.caption.tolist():
            kind, source, target = changes[cap]
            rng = random.Random(rendering_seed("held-apart", seed, kind, source, target, ph.id))
            texts.append(render(ph, source, target, kind, rng, variant=0 if ph is TEMPLATE else 1))
        out.append(CaptionSet(ph.id, qs, texts))
    return out


def paraphrase_report(model: nn.Module, g: GraphTensors, encode_texts: EncodeTexts, limit: int | None = None,
                      seed: int = 0) -> dict:
    """The test queries (at most ``limit``, seeded) in the template and every held-apart phrasing."""
    qs = g.queries["test"].with_targets(limit, seed)
    sets = phrased_sets(g, qs, seed=seed)
    report = evaluate_captions(model, g, sets, encode_texts)
    report["examples"] = {s.name: s.texts[:3] for s in sets}
    report["phrasings"] = {ph.id: ph.text + (" (typos)" if ph.typos else "") for ph in (TEMPLATE, *HELD_APART)}
    report["queries"] = len(sets[0].queries) if sets else 0
    return report


# --- shopper captions ------------------------------------------------------------------------------


def read_shopper(path: Path = SHOPPER_FILE) -> list[dict]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
    return out


def shopper_report(model: nn.Module, g: GraphTensors, encode_texts: EncodeTexts, path: Path = SHOPPER_FILE) -> dict:
    """The hand-written pairs as written, in template form, as "something similar", and image-only; also
    per caption style (short, contrastive, descriptive, misspelt, vague). Only the pairs that are test
    queries of ``g`` (all of them on the full myntra-small; fewer on a slice of it)."""
    written = read_shopper(path)
    test = g.queries["test"]
    row_of = {qid: i for i, qid in enumerate(test.ids)}
    pairs = [p for p in written if p["query_id"] in row_of]
    if not pairs:
        raise ValueError(f"{path}: none of its {len(written)} pairs is a test query of this graph; load "
                         "myntra-small's composed queries")
    qs = test.subset([row_of[p["query_id"]] for p in pairs])
    sets = [CaptionSet("as written", qs, [p["text"] for p in pairs]),
            CaptionSet("template", qs, [p["template"] for p in pairs]),
            CaptionSet("something similar", qs, ["something similar"] * len(pairs))]
    styles = sorted({p["style"] for p in pairs})
    for style in styles:
        rows = [i for i, p in enumerate(pairs) if p["style"] == style]
        sub = qs.subset(rows)
        sets += [CaptionSet(f"{style}: as written", sub, [pairs[i]["text"] for i in rows]),
                 CaptionSet(f"{style}: template", sub, [pairs[i]["template"] for i in rows])]
    report = evaluate_captions(model, g, sets, encode_texts)
    report["pairs"] = len(pairs)
    report["pairs_in_fixture"] = len(written)
    for key in ("parser_on", "engine"):
        r = report[key]
        report[f"written_over_template_{key}"] = round(r["as written"]["id_R@10"] / max(r["template"]["id_R@10"], 1e-9), 4)
    return report


# --- reports ---------------------------------------------------------------------------------------


def _bars(report: dict, names: list[str], title: str, path: Path, reference: str | None) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names) + 3), 4.8))
    x = np.arange(len(names))
    bars = (("engine", "answer (parser on; image only where unsure)"), ("parser_on", "model, parser on"),
            ("parser_off", "model, parser off (text features only)"), ("image_only", "image only"))
    width = 0.8 / len(bars)
    for j, (key, label) in enumerate(bars):
        values = [report[key][n]["id_R@10"] for n in names]
        ax.bar(x + (j - (len(bars) - 1) / 2) * width, values, width, label=label,
               color="0.6" if key == "image_only" else None)
    if reference is not None:
        ref = report["engine"][reference]["id_R@10"]
        ax.axhline(ref, color="k", linestyle="--", linewidth=1, label=f"{reference} ({ref:.1f})")
        ax.axhline(ref - 3, color="k", linestyle=":", linewidth=1, label=f"{reference} - 3")
    ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("exact-id recall@10 (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def _table(report: dict, names: list[str]) -> str:
    lines = ["| phrasing | id R@10: answer | model, parser on | model, parser off | image only | unsure parses | queries |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        u = report["unsure"][n]
        lines.append(f"| {n} | {report['engine'][n]['id_R@10']:.1f} | {report['parser_on'][n]['id_R@10']:.1f} | "
                     f"{report['parser_off'][n]['id_R@10']:.1f} | {report['image_only'][n]['id_R@10']:.1f} | "
                     f"{u['queries']:,} | {report['parser_on'][n]['queries']:,} |")
    return "\n".join(lines) + "\n"


def write_paraphrases(report: dict, out: Path) -> None:
    names = list(report["phrasings"])
    atomic_write_json(out / "paraphrases.json", report)
    atomic_write(out / "paraphrases.md", _table(report, names))
    _bars(report, names, f"test queries in held-apart phrasings ({report['queries']:,} queries)",
          out / "paraphrases.png", "template")


def write_shopper(report: dict, out: Path) -> None:
    names = [n for n in report["parser_on"] if ":" not in n]
    styles = [n for n in report["parser_on"] if ":" in n]
    atomic_write_json(out / "shopper.json", report)
    atomic_write(out / "shopper.md", _table(report, names + styles))
    _bars(report, names + styles, f"hand-written shopper captions ({report['pairs']} test pairs)",
          out / "shopper.png", "template")
