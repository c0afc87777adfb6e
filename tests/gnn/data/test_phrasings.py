"""gnn.data.phrasings and GraphTensors.with_caption_inputs: training captions drawn from the phrasing grammar,
featurised with the real MiniLM, parsed once, swapped into a batch's graph (or left without MENTIONS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnn.config import ExperimentConfig, GraphConfig, PhrasingConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.data.phrasings import PhrasingBank, caption_changes
from gnn.training.fit import fit_model, model_config
from readers.phrasings import HELD_APART
from tests.gnn.synthetic import synthetic_export


@pytest.fixture(scope="module")
def graph(minilm):
    """The synthetic graph with MiniLM features for its caption and attribute texts."""
    export, feats = synthetic_export(per_cell=4)
    feats["Caption"] = minilm.encode_texts([c.text for c in export.captions])
    feats["Attribute"] = minilm.encode_texts(list(export.attributes))
    return export, build_graph_tensors(export, feats, GraphConfig())


def _mentions(g, cap_row: int) -> set[tuple[int, int]]:
    """(role relation, attribute row) of one caption's MENTIONS."""
    node = g.offsets["Caption"] + cap_row
    _, bwd = g.mention_relations()
    src, dst = g.edge_index
    sel = (dst == node) & torch.isin(g.edge_type, torch.tensor(bwd))
    return {(int(t), int(a) - g.offsets["Attribute"]) for t, a in zip(g.edge_type[sel], src[sel], strict=True)}


def test_caption_changes_read_the_catalog_captions(graph) -> None:
    export, g = graph
    changes = caption_changes(g)
    assert len(changes) == len(export.captions)
    row = g.index["Caption"][export.captions[0].id]
    kind, source, target = changes[row]
    assert export.captions[0].text == f"replace {source} with {target}" and kind == "colour"


def test_with_caption_inputs_swaps_text_and_mentions_of_those_captions_only(graph) -> None:
    _, g = graph
    rows = torch.tensor([0, 5])
    features = torch.ones(2, g.features["Caption"].shape[1])
    red = g.index["Attribute"]["red"]
    swapped = g.with_caption_inputs(rows, features, torch.tensor([0]), torch.tensor([0]), torch.tensor([red]))
    added_rel = g.mention_relations()[1][0]
    assert _mentions(swapped, 0) == {(added_rel, red)}
    assert _mentions(swapped, 5) == set()  # no parse at all
    assert _mentions(swapped, 7) == _mentions(g, 7)  # others untouched
    assert torch.equal(swapped.features["Caption"][rows], features)
    assert torch.equal(swapped.features["Caption"][7], g.features["Caption"][7])
    assert swapped.edge_index.shape[1] == g.edge_index.shape[1] - 4 + 1
    assert _mentions(g, 0) and g.features["Caption"][0].abs().sum() != len(features[0])  # g unchanged


def test_the_bank_renders_training_phrasings_only_and_draws_per_batch(graph, minilm) -> None:
    export, g = graph
    text_of = {c.id: c.text for c in export.captions}
    train_rows = g.queries["train"].caption.tolist()
    config = PhrasingConfig(variants=2, template_share=0.0, parse_dropout=0.0)
    bank = PhrasingBank(g, train_rows, config)
    bank.featurise(minilm.encode_texts)
    assert bank.captions == len(train_rows) and len(bank) > 20 * 12
    texts = set(bank.parsed.texts)
    assert "replace red with blue" in texts and "in blue" in texts
    assert not any(t.startswith("swap the") or "->" in t or t.endswith(" version") for t in texts)
    assert all(p.id not in {"template"} for p in HELD_APART)
    # each rendering's features are MiniLM's of its text
    i = bank.parsed.texts.index("in blue")
    np.testing.assert_allclose(bank.parsed.features[i].float().numpy(), minilm.encode_texts(["in blue"])[0],
                               atol=2e-3)

    gen = torch.Generator().manual_seed(0)
    caps = torch.tensor(train_rows[:16])
    sub, local = g.restrict_captions(caps)
    out = bank.apply(sub, local, caps, gen)
    rows = {tuple(v.tolist()): k for k, v in enumerate(bank.parsed.features.float())}
    added_rel, removed_rel, _ = g.mention_relations()[1]
    changed = 0
    for c, lc in zip(caps.tolist(), local.tolist(), strict=True):
        drawn = rows[tuple(out.features["Caption"][lc].half().float().tolist())]  # a rendering's features ...
        parse = bank.parsed.roles[drawn]
        want = {(added_rel, g.index["Attribute"][v]) for v in parse.added}
        want |= {(removed_rel, g.index["Attribute"][v]) for v in parse.removed}
        assert _mentions(out, lc) == want  # ... and the MENTIONS of that text's parse
        changed += bank.parsed.texts[drawn] != text_of[g.ids["Caption"][c]]
    assert changed > 0
    # parse dropout 1: no caption of the batch keeps a MENTIONS edge
    bank.config = PhrasingConfig(template_share=0.5, parse_dropout=1.0)
    dropped = bank.apply(sub, local, caps, gen)
    assert all(_mentions(dropped, lc) == set() for lc in local.tolist())


def test_fit_trains_with_phrasings_and_says_so(graph, minilm, tmp_path) -> None:
    _, g = graph
    config = model_config("graph_catalog", ExperimentConfig(train=TrainConfig(epochs=2, batch_size=64, negatives=16)))
    config.model.hidden = 16
    config.simulation.enabled = False
    run = fit_model("graph_catalog", g, config, tmp_path, log=lambda s: None, encode_texts=minilm.encode_texts)
    assert run.meta["phrasings"]["captions"] == len(g.queries["train"]) and run.meta["phrasings"]["texts"] > 0
    logs: list[str] = []
    plain = fit_model("graph_catalog", g, config, tmp_path, log=logs.append)  # no encoder: own captions only
    assert not plain.reused and plain.meta["phrasings"] == {} and any("own captions" in m for m in logs)
