"""Training captions in many phrasings: every training query rendered in the grammar's training phrasings
(:mod:`readers.phrasings`), each text featurised once and parsed once, then drawn per batch.

A :class:`PhrasingBank` holds, for each training caption that changes one known value into another
(its MENTIONS edges say which: removed A, added B), the ids of its renderings; for each rendering its text
features and the MENTIONS its parse gives. :meth:`PhrasingBank.apply` swaps a batch's captions for
drawn renderings (or keeps the catalog caption), and drops the MENTIONS of some so that the parser-off
path is trained too (:class:`gnn.config.PhrasingConfig`).
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gnn.config import PhrasingConfig
from gnn.data.graph import GraphTensors
from readers.captions import CaptionRoles, Vocabulary, parse_relative_caption
from readers.phrasings import TRAINING, Phrasing, render
from readers.progress import StartPhase, no_progress

__all__ = ["ParsedTexts", "PhrasingBank", "caption_changes", "parse_texts", "rendering_seed"]

EncodeTexts = Callable[[Sequence[str]], np.ndarray]
ROLE_NAMES = ("added", "removed", "mentioned")


def rendering_seed(*parts: object) -> int:
    """A stable seed for one rendering (the same text in every run and process)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode("utf-8"))


def caption_changes(g: GraphTensors, rows: Sequence[int] | None = None) -> dict[int, tuple[str, str, str]]:
    """Caption row -> (kind, value removed, value added) for captions whose MENTIONS remove one value and
    add one (the catalog's "replace A with B"); others are left out."""
    mentions = g.caption_mentions()
    names = g.ids["Attribute"]
    wanted = None if rows is None else set(rows)
    out: dict[int, tuple[str, str, str]] = {}
    for cap, by_role in mentions.items():
        if wanted is not None and cap not in wanted:
            continue
        added, removed = by_role.get(0, []), by_role.get(1, [])
        if len(added) == 1 and len(removed) == 1:
            kind = g.attribute_kind[added[0]] if g.attribute_kind else "value"
            out[cap] = (kind, names[removed[0]], names[added[0]])
    return out


@dataclass
class ParsedTexts:
    """Texts with their features and parses, MENTIONS in CSR form: text i's are ``ptr[i]:ptr[i + 1]``."""

    texts: list[str]
    features: Tensor  # [T, d] float16 (halved memory; made float32 when used)
    ptr: Tensor  # [T + 1]
    role: Tensor  # [M] 0 added, 1 removed, 2 mentioned
    attr: Tensor  # [M] attribute rows
    roles: list[CaptionRoles]

    def mentions_of(self, text_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(position in ``text_ids``, role, attribute row) of every MENTIONS of those texts."""
        start, stop = self.ptr[text_ids], self.ptr[text_ids + 1]
        counts = stop - start
        pos = torch.repeat_interleave(torch.arange(len(text_ids)), counts)
        offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        idx = torch.repeat_interleave(start, counts) + offsets
        return pos, self.role[idx], self.attr[idx]


def parse_texts(texts: list[str], features: np.ndarray | None, attribute_names: Sequence[str]) -> ParsedTexts:
    """Parse each text against the graph's attributes; keep features (when given) and MENTIONS side by side."""
    vocab = Vocabulary(attribute_names)
    row = {a: i for i, a in enumerate(attribute_names)}
    ptr, role, attr, parsed = [0], [], [], []
    for text in texts:
        r = parse_relative_caption(text, vocab)
        parsed.append(r)
        for k, name in enumerate(ROLE_NAMES):
            for v in getattr(r, name):
                if v in row:
                    role.append(k)
                    attr.append(row[v])
        ptr.append(len(role))
    feats = torch.zeros(0) if features is None else torch.as_tensor(np.asarray(features, dtype=np.float16))
    return ParsedTexts(texts, feats,
                       torch.tensor(ptr, dtype=torch.long), torch.tensor(role, dtype=torch.long),
                       torch.tensor(attr, dtype=torch.long), parsed)


class PhrasingBank:
    """Renderings of the training captions in the training phrasings (see the module doc)."""

    def __init__(self, g: GraphTensors, caption_rows: Sequence[int], config: PhrasingConfig,
                 phrasings: Sequence[Phrasing] = TRAINING, start_phase: StartPhase | None = None):
        """Render and parse (cheap); :meth:`featurise` computes the texts' features (the costly part, skipped
        when a checkpoint trained on the same renderings is reused)."""
        self.config = config
        changes = caption_changes(g, caption_rows)
        pairs = sorted(set(changes.values()))
        text_id: dict[str, int] = {}
        pair_texts: dict[tuple[str, str, str], list[int]] = {}
        advance = (start_phase or no_progress)("rendering training phrasings", len(pairs))
        for pair in pairs:
            kind, source, target = pair
            ids = []
            for ph in phrasings:
                if not ph.fits(kind):
                    continue
                for variant in range(config.variants):
                    rng = random.Random(rendering_seed(config.seed, source, target, ph.id, variant))
                    text = render(ph, source, target, kind, rng, variant=variant, typo_share=config.typo_share)
                    ids.append(text_id.setdefault(text, len(text_id)))
            pair_texts[pair] = sorted(set(ids))
            advance(1)
        texts = list(text_id)
        self.parsed = parse_texts(texts, None, g.ids["Attribute"])
        n_cap = len(g.ids["Caption"])
        counts = torch.zeros(n_cap, dtype=torch.long)
        options: list[list[int]] = [[] for _ in range(n_cap)]
        for cap, pair in changes.items():
            options[cap] = pair_texts[pair]
            counts[cap] = len(options[cap])
        self.ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        self.options = torch.tensor([t for o in options for t in o], dtype=torch.long)
        self.captions = len(changes)

    def __len__(self) -> int:
        return len(self.parsed.texts)

    def fingerprint(self) -> str:
        """What training sees of the grammar and the parser: every rendering and its MENTIONS (a checkpoint
        is reused only when these are the same)."""
        h = hashlib.sha256()
        for text in self.parsed.texts:
            h.update(text.encode("utf-8") + b"\x00")
        for t in (self.parsed.ptr, self.parsed.role, self.parsed.attr, self.ptr, self.options):
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    def featurise(self, encode_texts: EncodeTexts) -> None:
        self.parsed.features = torch.as_tensor(np.asarray(encode_texts(self.parsed.texts), dtype=np.float16))

    def draw(self, captions: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Per caption row: the rendering drawn (-1: keep the catalog caption) and whether its MENTIONS are
        dropped."""
        n = len(captions)
        have = self.ptr[captions + 1] - self.ptr[captions]
        rephrase = (torch.rand(n, generator=generator) >= self.config.template_share) & (have > 0)
        pick = (torch.rand(n, generator=generator) * have.clamp(min=1)).long()
        chosen = torch.where(rephrase, self.options[(self.ptr[captions] + pick).clamp(max=max(len(self.options) - 1, 0))],
                             torch.full((n,), -1, dtype=torch.long))
        dropped = torch.rand(n, generator=generator) < self.config.parse_dropout
        return chosen, dropped

    def apply(self, sub: GraphTensors, local: Tensor, captions: Tensor, generator: torch.Generator) -> GraphTensors:
        """``sub`` (a batch's graph; ``local`` its rows of the batch's ``captions``) with the batch's captions
        in drawn phrasings; captions kept as they are where nothing changes."""
        chosen, dropped = self.draw(captions, generator)
        changed = (chosen >= 0) | dropped
        if not bool(changed.any()):
            return sub
        rows, picked = local[changed], chosen[changed]
        if len(torch.unique(rows)) < len(rows):  # a caption twice in one batch keeps its first reading
            first = {}
            for i, r in enumerate(rows.tolist()):
                first.setdefault(r, i)
            keep = torch.tensor(sorted(first.values()), dtype=torch.long)
            rows, picked, dropped_rows = rows[keep], picked[keep], dropped[changed][keep]
        else:
            dropped_rows = dropped[changed]
        features = sub.features["Caption"][rows].clone()
        rephrased = picked >= 0
        if bool(rephrased.any()):
            features[rephrased] = self.parsed.features[picked[rephrased]].float()
        # A rephrased caption gets the MENTIONS of its text's parse; a dropped one (rephrased or not) none.
        parsed = torch.nonzero(rephrased & ~dropped_rows).flatten()
        pos, role, attr = self.parsed.mentions_of(picked[parsed])
        return sub.with_caption_inputs(rows, features, parsed[pos], role, attr)
