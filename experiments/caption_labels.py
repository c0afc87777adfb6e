"""The caption parser against hand labels: precision, recall and F1 per role on real FashionIQ and Shoes
captions (``tests/fixtures/captions/real_labelled.jsonl``; conventions in its LABELS.md), and the removed and
negated roles alone on two development sets of FashionIQ train and Shoes captions, which parser work may
look at without touching the held-out half: captions that contain a removal cue (``removal_dev.jsonl``),
and captions the parser gave a removed role (``removal_precision_dev.jsonl``, for the role's precision).

Parser values and labels are both reduced to the vocabulary's concept names before they are compared
(``Vocabulary.concept_of``: "long-sleeved" and "long sleeve" are one concept), so a spelling difference is
not an error and a different attribute is. Comparatives are compared by their words (lemmas).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from readers.captions import CaptionRoles, Vocabulary, lexicon_vocabulary, parse_relative_caption
from readers.captions.tokens import tokenize
from readers.datasets import fashioniq_root

ROLES = ("added", "removed", "negated", "comparative")
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "captions"
LABELS_FILE = FIXTURES / "real_labelled.jsonl"
REMOVAL_DEV_FILE = FIXTURES / "removal_dev.jsonl"
# Captions the parser gave a removed role, each removal labelled right or wrong: the removed role's precision.
REMOVAL_PRECISION_DEV_FILE = FIXTURES / "removal_precision_dev.jsonl"


@dataclass(frozen=True)
class LabelledCaption:
    id: str
    text: str
    split: str
    labels: dict[str, tuple[str, ...]]
    roles: tuple[str, ...] = ROLES  # the roles that were labelled (the others are not scored)


@dataclass
class RoleScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class LabelReport:
    scores: dict[str, RoleScore] = field(default_factory=lambda: {r: RoleScore() for r in ROLES})
    captions: int = 0
    negated_missed: list[tuple[str, str]] = field(default_factory=list)  # (caption id, label) not removed
    errors: list[dict] = field(default_factory=list)  # per caption, where prediction and label differ

    def as_dict(self) -> dict:
        return {"captions": self.captions, **{r: s.as_dict() for r, s in self.scores.items()},
                "negated_not_removed": [list(x) for x in self.negated_missed]}


def read_labelled(path: Path = LABELS_FILE) -> list[LabelledCaption]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            roles = tuple(d.get("labelled_roles", ROLES))
            out.append(LabelledCaption(d["id"], d["text"], d.get("split", "dev"), {r: tuple(d[r]) for r in roles},
                                       roles))
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from exc
    return out


def fashioniq_caption_vocabulary(root: Path | None = None) -> Vocabulary:
    """What the FashionIQ loader parses with: the attribute files' phrases (when the dataset is there) and
    the lexicon's words."""
    from readers.fashioniq import caption_vocabulary

    root = root if root is not None else fashioniq_root()
    if root.is_dir():
        return Vocabulary(caption_vocabulary(root))
    return Vocabulary(lexicon_vocabulary())


def _comparative_key(text: str) -> str:
    return " ".join(t.lemma for t in tokenize(text.lower()))


def _predicted(roles: CaptionRoles, vocab: Vocabulary) -> dict[str, set[str]]:
    return {
        "added": {vocab.concept_of(v) for v in roles.added},
        "removed": {vocab.concept_of(v) for v in roles.removed},
        "negated": {vocab.concept_of(v) for v in roles.negated},
        "comparative": {_comparative_key(c.text) for c in roles.comparatives},
    }


def score_labels(captions: Iterable[LabelledCaption], vocab: Vocabulary) -> LabelReport:
    report = LabelReport()
    for c in captions:
        report.captions += 1
        got = _predicted(parse_relative_caption(c.text, vocab), vocab)
        want = {r: ({_comparative_key(x) for x in c.labels[r]} if r == "comparative"
                    else {vocab.concept_of(x) for x in c.labels[r]}) for r in c.roles}
        got = {r: got[r] for r in c.roles}
        for r in c.roles:
            s = report.scores[r]
            s.tp += len(got[r] & want[r])
            s.fp += len(got[r] - want[r])
            s.fn += len(want[r] - got[r])
        if "negated" in c.roles:
            report.negated_missed += [(c.id, x) for x in sorted(want["negated"] - got.get("removed", set()))]
        if any(got[r] != want[r] for r in c.roles):
            report.errors.append({"id": c.id, "text": c.text,
                                  **{r: {"extra": sorted(got[r] - want[r]), "missing": sorted(want[r] - got[r])}
                                     for r in c.roles if got[r] != want[r]}})
    return report


def label_scores(splits: Sequence[str] = ("dev", "test"), vocab: Vocabulary | None = None,
                 path: Path = LABELS_FILE) -> dict[str, LabelReport]:
    """One report per split and one for all captions."""
    vocab = vocab or fashioniq_caption_vocabulary()
    captions = read_labelled(path)
    out = {s: score_labels([c for c in captions if c.split == s], vocab) for s in splits}
    out["all"] = score_labels(captions, vocab)
    return out


def removal_dev_scores(vocab: Vocabulary | None = None, path: Path = REMOVAL_DEV_FILE) -> LabelReport:
    """The removed and negated roles on the second development set (only those roles are labelled there)."""
    return score_labels(read_labelled(path), vocab or fashioniq_caption_vocabulary())


def removal_precision_dev_scores(vocab: Vocabulary | None = None,
                                 path: Path = REMOVAL_PRECISION_DEV_FILE) -> LabelReport:
    """The removed and negated roles on the precision development set: FashionIQ train and Shoes captions
    sampled among those the parser gave a removed role, so its false removals show."""
    return removal_dev_scores(vocab, path)
