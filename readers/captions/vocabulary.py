"""The values a caption can name: a vocabulary (the graph's attribute names) joined to the lexicon.

Every phrase is reduced to a **key** (its tokens' lemmas; see :mod:`readers.captions.tokens`) and the keys
go into a trie, so matching a caption walks it once from each token: at most the longest key's length of
steps per token, linear in the caption. Longest match wins ("navy blue" is one value, never also "blue").

A key means a **sense**: the concept it names, that concept's kind, and the vocabulary values it resolves
to. A concept resolves to the values tied to it (a value is tied to the concept one of whose spellings it
is: "tshirts" to "t shirt", "Navy Blue" to "navy blue"), else to its parent's ("navy" -> "navy blue" at
full confidence; "light pink" -> "pink", "cobalt" -> "blue" as near misses). A concept the vocabulary
cannot resolve is still recognised (so "no stripes" is read as a negation of something), it just names no
value. A vocabulary value that is only a combination of other known attributes ("belted floral print") is
matched as those attributes, not as one phrase.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from readers.captions import lexicon as lx
from readers.captions.tokens import SPELLINGS, Token, TypoIndex, lemma, tokenize
from readers.records import normalise_value

__all__ = ["Match", "Sense", "Vocabulary", "WorkCounter", "lexicon_vocabulary"]

_END = ""  # the trie's terminal marker (never a lemma)
_NEAR = {"same": 1.0, "shade": 0.9, "family": 0.8}
_PATTERN_SUFFIXES = ("print", "pattern", "design", "motif", "printed")
_COLOUR_SUFFIXES = ("colour", "coloured", "tone", "toned", "shade", "hue")
# Vocabulary values made of these kinds only are split into them; garments, gender, usage and season name
# a product line ("sports sandals", "casual shoes") and keep the phrase.
_SPLITTABLE = frozenset({"colour", "shade", "pattern", "motif", "material", "detail", "part", "shape", "style"})


@dataclass(frozen=True)
class Sense:
    concept: str
    kind: str
    generic: bool
    values: tuple[str, ...]  # the vocabulary values it stands for (empty: known, but not in this vocabulary)
    near: float  # 1.0, or below for a shade or family fallback


@dataclass(frozen=True)
class Match:
    start: int  # token span
    end: int
    sense: Sense
    corrected: bool  # reached through a typo correction
    words: tuple[str, ...]  # the lemmas as written


class WorkCounter:
    """Counts parsing steps (tokens visited, trie steps, grammar steps): the linear-time check reads it."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps = 0


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(t.lemma for t in tokenize(normalise_value(phrase)) if t.kind != "punct" or t.text != ",")


def _keys(phrase: str) -> list[tuple[str, ...]]:
    """The phrase's key, and the run-together key of a multi-word phrase ("t shirt" -> "tshirt")."""
    key = _key(phrase)
    if not key:
        return []
    out = [key]
    if len(key) > 1:
        words = [t.text for t in tokenize(normalise_value(phrase))]
        out.append((lemma("".join(words)),))
    return out


def _root_of(name: str) -> str:
    """The concept a chain of "same" relations leads to (two spellings of one thing may share a key)."""
    c = lx.CONCEPTS[name]
    while c.relation == "same" and c.parent is not None:
        c = lx.CONCEPTS[c.parent]
    return c.name


def lexicon_vocabulary(kinds: Iterable[str] | None = None) -> set[str]:
    """The lexicon's concept names (of ``kinds``; default all): words people use that attribute files may
    lack (FashionIQ's have almost no colours)."""
    wanted = None if kinds is None else set(kinds)
    return {c.name for c in lx.CONCEPTS.values() if wanted is None or c.kind in wanted}


class Vocabulary:
    """Known attribute values compiled for matching (build once, reuse for many captions)."""

    def __init__(self, values: Iterable[str], lexicon: bool = True):
        norm = {normalise_value(v) for v in values}
        norm.discard("")
        self.values: frozenset[str] = frozenset(norm)
        self._root: dict = {}
        self._concept: dict[tuple[str, ...], str] = {}  # key -> concept name
        self._kind: dict[str, str] = {}
        self._generic: dict[str, bool] = {}
        self._parent: dict[str, tuple[str, str]] = {}  # concept -> (parent, relation)
        self._tied: dict[str, list[str]] = {}  # concept -> vocabulary values tied to it
        self._value_concept: dict[str, str] = {}
        self._surface_words: set[str] = set()
        if lexicon:
            self._add_lexicon()
        lexicon_keys = dict(self._concept)
        pending = []
        for value in sorted(self.values):
            if value in lx.NOT_ATTRIBUTES:
                continue
            keys = _keys(value)
            if not keys:
                continue
            concept = next((lexicon_keys[k] for k in keys if k in lexicon_keys), None)
            if concept is not None:
                self._tie(value, concept)
            else:
                pending.append((value, keys))
        for value, keys in pending:
            if self._is_combination(keys[0], value):
                continue
            concept = self._concept.get(keys[0], value)
            if concept == value:
                self._kind.setdefault(value, "value")
                self._generic.setdefault(value, False)
                for k in keys:
                    self._insert(k, value, explicit=True, surface=value)
            self._tie(value, concept)
        words = {w for k in self._concept for w in k} | self._surface_words
        words |= {variant for variant, spelled in SPELLINGS.items() if spelled in words}  # "gray" for "grey"
        cue_words = {w for phrase in (*lx.REMOVE_PHRASES, *lx.INSTEAD_PHRASES, *lx.ADD_PHRASES) for w in phrase.split()}
        self.typos = TypoIndex(
            targets=words | set(lx.COMPARATIVES) | {w for w in cue_words if len(w) >= 5} | lx.REPLACE_VERBS
            | {w for w in lx.NEGATIONS if len(w) >= 5}
            | {"version", "instead", "without", "replace", "change", "rather", "please"},
            known=words | lx.NEGATIONS | lx.REPLACE_VERBS | cue_words | lx.COMMON_WORDS | lx.FILLERS
            | lx.DETERMINERS | lx.PREPOSITIONS | lx.POSTFIX_ADD | lx.SAME_WORDS | lx.CONTRAST_WORDS,
            preferred=self._value_words(),
        )
        self._senses: dict[str, Sense] = {}

    # - building -

    def _insert(self, key: tuple[str, ...], concept: str, explicit: bool, surface: str = "") -> None:
        if surface:
            self._surface_words.update(t.text for t in tokenize(surface) if t.kind == "word")
        have = self._concept.get(key)
        if have is not None:
            if have != concept and explicit and have in lx.CONCEPTS and concept in lx.CONCEPTS \
                    and _root_of(have) != _root_of(concept):
                raise ValueError(f"lexicon: {' '.join(key)!r} spells both {have!r} and {concept!r}")
            return
        self._concept[key] = concept
        node = self._root
        for w in key:
            node = node.setdefault(w, {})
        node[_END] = concept

    def _add_lexicon(self) -> None:
        generated: list[tuple[tuple[str, ...], str]] = []
        for c in lx.CONCEPTS.values():
            self._kind[c.name] = c.kind
            self._generic[c.name] = c.generic
            if c.parent is not None:
                self._parent[c.name] = (c.parent, c.relation)
            for surface in (c.name, *c.surfaces):
                keys = _keys(surface)
                for n, k in enumerate(keys):  # the run-together key (second) yields to a spelled one
                    self._insert(k, c.name, explicit=n == 0, surface=surface)
                suffixes = _PATTERN_SUFFIXES if c.kind in ("pattern", "motif") else (
                    _COLOUR_SUFFIXES if c.kind in ("colour", "shade") else ())
                for s in suffixes:
                    generated += [((*k, lemma(s)), c.name) for k in keys[:1]]
        for key, name in generated:  # spelled-out surfaces win over these
            self._insert(key, name, explicit=False)

    def _tie(self, value: str, concept: str) -> None:
        self._surface_words.update(t.text for t in tokenize(value) if t.kind == "word")
        self._tied.setdefault(concept, []).append(value)
        self._value_concept[value] = concept

    def _is_combination(self, key: tuple[str, ...], value: str) -> bool:
        """True when ``key`` splits wholly into two or more known attributes of this vocabulary."""
        parts: list[str] = []
        i = 0
        while i < len(key):
            node, j, best = self._root, i, None
            while j < len(key) and key[j] in node:
                node = node[key[j]]
                j += 1
                if _END in node:
                    best = (j, node[_END])
            if best is None:
                return False
            i, concept = best
            parts.append(concept)
        return len(parts) >= 2 and all(
            self._kind.get(p) in _SPLITTABLE and self._resolve(p, {value})[0] for p in parts)

    def _value_words(self) -> set[str]:
        """Words of the phrases that name a value of this vocabulary (a typo is read as one of them first)."""
        out: set[str] = set()
        for key, concept in self._concept.items():
            if self._resolve(concept)[0]:
                out.update(key)
        for value in self._value_concept:
            out.update(t.text for t in tokenize(value) if t.kind == "word")
        return out

    # - senses -

    def _resolve(self, concept: str, exclude: set[str] = frozenset()) -> tuple[tuple[str, ...], float]:
        factor = 1.0
        seen: set[str] = set()
        c: str | None = concept
        while c is not None and c not in seen:
            seen.add(c)
            tied = tuple(v for v in self._tied.get(c, ()) if v not in exclude)
            if tied:
                return tied, factor
            parent = self._parent.get(c)
            if parent is None:
                break
            c, relation = parent
            factor *= _NEAR[relation]
        return (), 0.0

    def sense(self, concept: str) -> Sense:
        got = self._senses.get(concept)
        if got is None:
            values, near = self._resolve(concept)
            got = Sense(concept, self._kind.get(concept, "value"), self._generic.get(concept, False), values, near)
            self._senses[concept] = got
        return got

    def concept_of(self, value: str) -> str:
        """The concept a vocabulary value (or any phrase) stands for; the normalised phrase if none."""
        v = normalise_value(value)
        if v in self._value_concept:
            return self._value_concept[v]
        for k in _keys(v)[:1]:
            if k in self._concept:
                return self._concept[k]
        return v

    # - matching -

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and normalise_value(value) in self.values

    def __len__(self) -> int:
        return len(self.values)

    def match(self, tokens: Sequence[Token], work: WorkCounter | None = None) -> list[Match]:
        """Longest matches left to right over ``tokens`` (typos corrected where that completes a match)."""
        out: list[Match] = []
        n = len(tokens)
        if any(t.proper for t in tokens):
            name_run = [t.proper and ((i > 0 and tokens[i - 1].proper) or (i + 1 < n and tokens[i + 1].proper))
                        for i, t in enumerate(tokens)]
        else:
            name_run = [False] * n
        steps = 0
        i = 0
        while i < n:
            steps += 1
            if tokens[i].kind != "word" or name_run[i]:
                i += 1
                continue
            node, j, best, corrected, words = self._root, i, None, False, []
            while j < n and tokens[j].kind == "word" and not name_run[j]:
                steps += 1
                tok = tokens[j]
                child = node.get(tok.lemma)
                width = 1
                word = tok.lemma
                if child is None and j + 1 < n and tokens[j + 1].joined:
                    word = lemma(tok.text + tokens[j + 1].text)
                    child, width = node.get(word), 2
                if child is None and not tok.proper:
                    for cand in self.typos.candidates(tok.text, tok.lemma)[:3]:
                        steps += 1
                        child = node.get(lemma(cand))
                        if child is not None:
                            corrected, width, word = True, 1, lemma(cand)
                            break
                if child is None:
                    break
                node = child
                j += width
                words.append(word)
                if _END in node:
                    best = (j, node[_END], corrected, tuple(words))
            if best is None:
                i += 1
                continue
            end, concept, was_corrected, matched = best
            out.append(Match(i, end, self.sense(concept), was_corrected, matched))
            i = end
        if work is not None:
            work.steps += steps
        return out

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, value) of each value named in normalised ``text`` (one row per value a phrase stands
        for), left to right."""
        tokens = tokenize(text)
        return [(tokens[m.start].start, tokens[m.end - 1].end, v) for m in self.match(tokens) for v in m.sense.values]


@lru_cache(maxsize=32)
def _cached_vocabulary(values: frozenset[str]) -> Vocabulary:
    return Vocabulary(values)


def as_vocabulary(vocabulary: Vocabulary | Iterable[str]) -> Vocabulary:
    """Accept a compiled Vocabulary or any iterable of values (compiled once per distinct set)."""
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    return _cached_vocabulary(frozenset(vocabulary))
