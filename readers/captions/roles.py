"""The role grammar: which values a caption adds, removes or only mentions, its comparatives, and how
sure the reading is.

The caption becomes a row of segments (a matched value, or a cue word or phrase) and is read left to
right once, clause by clause (". ; ! ?" end a clause), with a small state:

* **change constructions** give roles on both sides: "replace / swap / change / switch A with|for|to B",
  "from A to B", "A to B", "A -> B" remove A and add B; "B instead of A", "B rather than A", "rather B
  than A", "prefer B over A" add B and remove A (negated); "substitute B for A" the same;
* **negation** ("not", "no", "without", "doesn't", "isn't", "never", "non", "nor") removes what follows in
  its reach: across "or", across "and" or a comma within one kind of attribute without a new determiner
  ("no buttons or pockets", "no stripes and dots"), not across "but", a new clause, a preposition or an
  add cue once it has negated something ("no words on the graphic", "no slit, with pockets"), and a comma
  ends it unless a list goes on ("not navy, black" adds black; "not navy, grey or black" removes all);
  a feature does not continue a list of details ("no collar and long sleeves" adds the sleeves); after a
  word no vocabulary knows, a locative preposition ends it ("no opening on the top"); a garment noun right
  after a negated value names the item ("no sleeved tank top" removes the sleeve), and a part every item
  has is where the value is ("not a white sole" removes the white); "not" + a maximiser ("not an entire
  button up", "not all black") denies the totality, so what follows is only mentioned;
* **graded words**: "more X" adds a colour, pattern, material or detail and "less/fewer X" removes it (not
  negated), across "and" until a new determiner ("less shiny and a brown colour" adds brown); "not as X"
  and "not so X" are "less X"; with any other word, or a concept that is already a degree ("more casual",
  "less revealing", "less colourful", "more bright"), it is a comparative, which "and" carries on to
  other degrees only ("more casual and edgy"; "less fitted and purple" adds purple); comparative forms
  ("darker", "shorter sleeves", "a higher and narrower heel") take the part they grade, which is then not
  added ("lighter grey" grades nothing: grey is added; "darker and striped" adds the stripes);
* **"same ..."** makes what follows shared (mentioned) until "but";
* otherwise a value is **added**, except garment nouns that only name the item ("the shirt is black") and
  parts every item has ("a white sole"), which are mentioned; a caption naming only an item asks for it,
  unless the item is a place ("has no holes on top").

Every step touches a segment a bounded number of times (look-aheads are precomputed per clause), so a
parse is linear in the caption's length; :class:`WorkCounter` counts the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from readers.captions import lexicon as lx
from readers.captions.tokens import Token, tokenize
from readers.captions.vocabulary import Match, Vocabulary, WorkCounter

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["UNSURE_BELOW", "CaptionRoles", "Comparative", "negated_token_spans", "parse_roles"]

# Below this confidence a parse is "unsure": the engine says so and does not rely on it alone.
UNSURE_BELOW = 0.5
_DEFAULT_ROLE = 0.85  # a value with no cue of its own ("a green one")
_TYPO = 0.85
_PART_WORDS = frozenset({"sleeve", "heel", "neckline", "neck", "sole", "toe", "strap", "graphic", "pattern",
                         "print", "logo", "collar", "hem", "skirt", "waist", "line", "stripe", "frame",
                         "platform", "lacing", "button", "pocket", "design", "colour", "fit", "length", "cut"})


@dataclass(frozen=True)
class Comparative:
    """A graded change: "shorter sleeve" is (length, -1) of part "sleeve"; "more casual" is (casual, +1)."""

    text: str
    quality: str
    direction: int  # +1 more of the quality, -1 less
    part: str = ""


@dataclass(frozen=True)
class CaptionRoles:
    """Attribute values a caption adds, removes, or only mentions (each in order of appearance), the part
    of ``removed`` that a negation word removed, its comparatives, and how sure the reading is (1.0 for
    an explicit change of exactly known values; 0.0 when nothing was understood)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    mentioned: tuple[str, ...] = ()
    negated: tuple[str, ...] = ()
    comparatives: tuple[Comparative, ...] = ()
    confidence: float = 1.0

    @property
    def changes(self) -> bool:
        """True when the caption adds or removes a known value."""
        return bool(self.added or self.removed)

    @property
    def unsure(self) -> bool:
        """Nothing to act on, or a reading too doubtful to rely on alone."""
        return not self.changes or self.confidence < UNSURE_BELOW


@dataclass(slots=True)
class _Seg:
    cue: str
    lemma: str
    tok: int
    match: Match | None = None
    text: str = ""  # as written (comparatives keep the writer's words)


@dataclass(slots=True)
class _Entry:
    seg: int
    match: Match
    role: str | None = None  # added | removed | mentioned
    negated: bool = False
    explicit: bool = False
    shared: bool = False  # read under "same ..."
    placed: bool = False  # right after a locative preposition ("holes on top"): a place, not an item asked for


def _phrase_trie() -> dict:
    root: dict = {}
    phrases = [(p, "REMOVE") for p in lx.REMOVE_PHRASES] + [(p, "INSTEAD") for p in lx.INSTEAD_PHRASES]
    phrases += [(p, "ADD") for p in lx.ADD_PHRASES]
    phrases += [(p, "SAME") for p in ("like this", "like that", "like the", "like it", "same as", "just like",
                                      "similar to", "something like")]
    phrases += [(p, "NEG") for p in ("does not", "do not", "is not", "are not", "not have", "no longer")]
    phrases += [(p, "FILL") for p in ("not only", "no matter", "not sure", "not just")]
    phrases += [(p, "LESS") for p in ("not as", "not so", "isnt as", "arent as", "not quite as", "is not as",
                                      "are not as", "is not so")]
    for phrase, cue in phrases:
        words = [t.lemma for t in tokenize(phrase)]
        if len(words) < 2:
            continue
        node = root
        for w in words:
            node = node.setdefault(w, {})
        node[""] = cue
    return root


_PHRASES = _phrase_trie()
_SINGLE: dict[str, str] = {}
for _w in lx.FILLERS:
    _SINGLE[_w] = "FILL"
for _w in lx.DETERMINERS:
    _SINGLE[_w] = "DET"
for _w in lx.PREPOSITIONS:
    _SINGLE[_w] = "PREP"
for _w in (*(p for p in lx.ADD_PHRASES if " " not in p), "like", "prefer", "preferred"):
    _SINGLE[_w] = "ADD"
for _w in lx.POSTFIX_ADD - {"one", "ones", "pair", "look", "style"}:
    _SINGLE[_w] = "POSTADD"
for _w in lx.POSTFIX_REMOVE:
    _SINGLE[_w] = "POSTREMOVE"
for _w in lx.SAME_WORDS - {"like"}:
    _SINGLE[_w] = "SAME"
for _w in lx.CONTRAST_WORDS:
    _SINGLE[_w] = "BUT"
for _w in (p for p in lx.REMOVE_PHRASES if " " not in p):
    _SINGLE[_w] = "REMOVE"
for _w in lx.MORE_WORDS:
    _SINGLE[_w] = "MORE"
for _w in lx.LESS_WORDS:
    _SINGLE[_w] = "LESS"
for _w in lx.COMPARATIVES:
    _SINGLE[_w] = "COMP"
for _w in lx.REPLACE_VERBS:
    _SINGLE[_w] = "REPLACE"
for _w in lx.SUBSTITUTE_VERBS:
    _SINGLE[_w] = "SUBST"
for _w in lx.NEGATIONS:
    _SINGLE[_w] = "NEG"
_SINGLE.update({"from": "FROM", "to": "TO", "into": "TO", "with": "CONNECT", "by": "CONNECT", "for": "CONNECT",
                "and": "AND", "or": "OR", "nor": "OR", "than": "THAN", "over": "OVER", "rather": "RATHER",
                "better": "RATHER", "choose": "RATHER", "->": "ARROW", ",": "COMMA", ".": "END", ";": "END",
                "!": "END", "?": "END", "instead": "POSTADD", "prefer": "RATHER", "preferred": "RATHER"})
_CUE_WORDS = frozenset(_SINGLE) | {w for phrase in (*lx.REMOVE_PHRASES, *lx.INSTEAD_PHRASES) for w in phrase.split()}
_TRANSPARENT = frozenset({"FILL", "DET"})
# Add cues that describe the item ("is", "with") rather than ask for something: a garment noun after them
# still only names the item ("is a shirt with long sleeves").
_WEAK_ADD = frozenset({"is", "are", "be", "was", "were", "has", "have", "having", "with", "look", "looks",
                       "feature", "features", "featuring", "for", "by"})
_SEPARATORS = frozenset({"COMMA", "AND", "OR", "BUT", "END"})
# Kinds that are a degree (a style, a fit, or a phrase no lexicon knows): "more casual and edgy" grades both.
_DEGREE_KINDS = frozenset({"style", "shape", "value"})
# "not an entire button up", "not all black", "not completely sheer": the negation denies the totality, and
# the attribute is still there in part.
_MAXIMISERS = frozenset(t.lemma for w in ("all", "entire", "entirely", "whole", "wholly", "completely", "fully",
                                          "totally") for t in tokenize(w))
# Prepositions that place what a negation reaches ("no opening on the top", "not cinched at the waist"):
# the place is not negated. "of" is not one of them ("no hint of pink" negates the pink).
_LOCATIVE = frozenset(t.lemma for w in ("on", "at", "across", "around", "along", "near", "under", "above",
                                        "below", "behind", "inside", "outside", "between", "through",
                                        "throughout", "within", "beside", "upon") for t in tokenize(w))


def _segments(tokens: Sequence[Token], matches: list[Match], vocab: Vocabulary, work: WorkCounter) -> list[_Seg]:
    by_start = {m.start: m for m in matches}
    n = len(tokens)
    lemmas = [t.lemma for t in tokens]
    covered = {i for m in matches for i in range(m.start, m.end)}
    for i, t in enumerate(tokens):  # a misspelt cue word ("insted", "darkr", "verison")
        if t.lemma not in _SINGLE and t.kind == "word" and i not in covered and not t.proper:
            for cand in vocab.typos.candidates(t.text, t.lemma)[:3]:
                if cand in _CUE_WORDS:
                    lemmas[i] = cand
                    break
    segs: list[_Seg] = []
    i = 0
    while i < n:
        work.steps += 1
        m = by_start.get(i)
        if m is not None:
            segs.append(_Seg("VAL", " ".join(m.words), i, m, " ".join(t.text for t in tokens[i:m.end])))
            i = m.end
            continue
        node, j, best = _PHRASES, i, None
        while j < n and j not in by_start and lemmas[j] in node:
            work.steps += 1
            node = node[lemmas[j]]
            j += 1
            if "" in node:
                best = (j, node[""])
        if best is not None:
            segs.append(_Seg(best[1], " ".join(lemmas[i:best[0]]), i))
            i = best[0]
            continue
        segs.append(_Seg(_SINGLE.get(lemmas[i], "WORD"), lemmas[i], i, None, tokens[i].text))
        i += 1
    segs.append(_Seg("END", "", n))
    return segs


@dataclass(slots=True)
class _Ahead:
    """Per segment, what comes later (computed once, right to left): the next segment that is not a
    filler, the next that is neither filler nor determiner, and whether, later in the same clause, a list
    goes on (a coordinator followed by a value), a "to" comes, or a change connector does."""

    next_nf: list[int]
    next_content: list[int]
    list_later: list[bool]
    to_later: list[bool]
    connector_later: list[bool]


def _lookaheads(segs: list[_Seg]) -> _Ahead:
    n = len(segs)
    next_nf = [n] * (n + 1)
    next_content = [n] * (n + 1)
    list_later = [False] * (n + 1)
    to_later = [False] * (n + 1)
    connector_later = [False] * (n + 1)
    later = to = connector = False
    for k in range(n - 1, -1, -1):
        cue = segs[k].cue
        next_nf[k] = k if cue != "FILL" else next_nf[k + 1]
        next_content[k] = k if cue not in _TRANSPARENT else next_content[k + 1]
        if cue == "END":
            later = to = connector = False
        list_later[k], to_later[k], connector_later[k] = later, to, connector
        if cue in ("AND", "OR", "COMMA"):
            nc = next_content[k + 1]
            if nc < n and segs[nc].cue == "VAL":
                later = True
        to = to or cue == "TO"
        connector = connector or cue in ("TO", "CONNECT", "ARROW")
    return _Ahead(next_nf, next_content, list_later, to_later, connector_later)


def _class(match: Match) -> str:
    return lx.KIND_CLASS.get(match.sense.kind, "value")


def parse_roles(text: str, vocabulary: Vocabulary, work: WorkCounter | None = None) -> CaptionRoles:
    """The caption's roles, comparatives and confidence (see the module doc)."""
    work = work if work is not None else WorkCounter()
    tokens = tokenize(text)
    work.steps += len(tokens)
    matches = vocabulary.match(tokens, work)
    segs = _segments(tokens, matches, vocabulary, work)
    entries: list[_Entry] = []
    comparatives: list[Comparative] = []
    _Reader(segs, entries, comparatives, _lookaheads(segs), work).read()
    return _collect(entries, comparatives, _template_sides(tokens, entries))


def negated_token_spans(text: str, vocabulary: Vocabulary) -> list[tuple[int, int]]:
    """Token spans that a negation reaches: negated values, and plain words read while a negation was open
    ("not a mandarin collar" covers "mandarin" even where no vocabulary knows it)."""
    work = WorkCounter()
    tokens = tokenize(text)
    segs = _segments(tokens, vocabulary.match(tokens, work), vocabulary, work)
    entries: list[_Entry] = []
    reader = _Reader(segs, entries, [], _lookaheads(segs), work)
    reader.read()
    spans = [(e.match.start, e.match.end) for e in entries if e.negated]
    spans += [(segs[k].tok, segs[k].tok + 1) for k in reader.negated_words]
    return sorted(spans)


class _Reader:
    """One left-to-right pass over the segments (state reset at each clause end)."""

    def __init__(self, segs: list[_Seg], entries: list[_Entry], comparatives: list[Comparative], ahead: _Ahead,
                 work: WorkCounter):
        self.segs, self.entries, self.comparatives = segs, entries, comparatives
        self.ahead = ahead
        self.next_nf, self.next_content, self.list_later = ahead.next_nf, ahead.next_content, ahead.list_later
        self.work = work
        self.negated_words: list[int] = []
        self._reset()

    def _reset(self) -> None:
        self.neg = self.neg_hit = self.remove = self.remove_hit = self.add = self.add_strong = self.same = False
        self.neg_class: str | None = None
        self.neg_word = False  # the open negation has reached a word no vocabulary knows ("no opening")
        self.partial = False  # "not an entire ...": what follows is there in part, so it is only mentioned
        # replace_src | from_src | subst_new | subst_old | target (values added) | instead (values removed,
        # negated) | reference ("darker than the red": mentioned)
        self.mode: str | None = None
        self.rather = self.comp_seen = self.contrast = self.instead_hit = False
        self.left: list[_Entry] = []  # values since the last change construction in this clause
        self.prev: _Entry | None = None
        self.coord = False
        self.graded: str | None = None  # "more" | "less" waiting for its word
        self.carry: str | None = None  # a more/less that an "and" may carry on ("more pop culture and edgy")
        self.carry_comp = False  # ... after it made a comparative ("less fitted"), not a removal
        self.open_comps: list[int] = []  # comparatives still looking for their part

    def read(self) -> None:
        segs = self.segs
        k = 0
        while k < len(segs):
            self.work.steps += 1
            k = self._step(k, segs[k])

    # - one segment -

    def _step(self, k: int, s: _Seg) -> int:
        cue = s.cue
        if cue == "VAL":
            return self._value(k, s)
        if cue in _TRANSPARENT:
            return k + 1
        if cue == "WORD":
            if self.neg and not self.neg_hit:
                self.negated_words.append(k)
                self.neg_word = True
            if self.graded is not None or self.carry is not None:
                return self._graded_words(k)
            if self.open_comps and s.lemma in _PART_WORDS:
                self._attach_part(s.lemma)
            self.open_comps = []
            return k + 1
        # "a higher and narrower heel": comparatives wait across "and" for a shared part only when another
        # comparative follows; "darker and striped" asserts the stripes.
        keep_comps = cue == "COMP" or (
            cue == "AND" and self.segs[self.next_content[k + 1]].cue in ("COMP", "MORE", "LESS"))
        if not keep_comps:
            self.open_comps = []
        if cue != "AND":
            self.carry = None
        if cue == "END":
            self._reset()
        elif cue == "NEG":
            if self.segs[k + 1].lemma in ("as", "so"):  # "not as colourful", "not so shiny": a degree, less of it
                self.graded = "less"
                return k + 2
            j = k + 1
            while self.segs[j].cue == "DET" and j < k + 3:
                j += 1
            if self.segs[j].lemma in _MAXIMISERS:
                self.partial = True
                return j + 1
            self.neg, self.neg_hit, self.neg_class, self.neg_word = True, False, None, False
            p = self.prev
            if p is not None and not self.same and (p.role == "added" or (p.role == "mentioned" and p.match.sense.generic)):
                p.role, p.explicit = "added", True  # "black, not navy": a contrast
        elif cue == "REMOVE":
            self.remove, self.remove_hit = True, False
        elif cue in ("INSTEAD",):
            self._instead()
        elif cue in ("THAN", "OVER"):
            if self.rather:
                self._instead()
            elif cue == "THAN" and self.comp_seen:
                self.mode = "reference"
            elif cue == "OVER" and (self.neg_hit or self.remove_hit):
                self.neg = self.remove = False
        elif cue == "RATHER":
            self.rather = True
            if s.lemma in ("prefer", "preferred", "choose"):
                self._add_cue(True)
        elif cue == "REPLACE":
            after = self.segs[k + 1]
            if after.lemma in ("it", "them", "this", "that") or after.cue == "TO":
                self.mode = "target"  # "change it to blue", "turn it blue", "switch to blue"
            elif self.ahead.connector_later[k] or s.lemma in ("replace", "replacing", "replaced"):
                self.mode = "replace_src"  # without a "with/for/to" only "replace" itself removes: "a turn-down collar"
        elif cue == "SUBST":
            self.mode = "subst_new"
        elif cue == "FROM":
            if self.ahead.to_later[k]:
                self.mode = "from_src"  # "from red to blue"; not "from the same brand"
        elif cue == "TO":
            self._to(k)
        elif cue == "CONNECT":
            if self.mode == "replace_src":
                self.mode = "target"
            elif self.mode == "subst_new":
                self.mode = "subst_old"
            elif self.mode not in ("target", "subst_old"):
                self._add_cue(False)
        elif cue == "ARROW":
            for e in self.left:
                if not e.negated:
                    e.role, e.explicit = "removed", True
            self.left, self.mode = [], "target"
        elif cue == "ADD":
            if s.lemma == "in" and self.segs[k + 1].cue in ("END", "COMMA", "BUT"):
                return self._step(k, _Seg("POSTADD", "in", s.tok))  # "blue in"
            self._add_cue(s.lemma not in _WEAK_ADD)
        elif cue == "POSTADD":
            p = self.prev
            if p is not None and not p.explicit and (p.role == "added" or (p.role == "mentioned" and p.match.sense.generic
                                                                           and not self.same)):
                p.role, p.explicit = "added", True  # "blue please", "a tshirt instead"
        elif cue == "POSTREMOVE":
            if self.prev is not None and not self.prev.explicit and self.prev.role in ("added", "mentioned"):
                self.prev.role, self.prev.explicit = "removed", True
        elif cue == "SAME":
            self.same = True
        elif cue == "BUT":
            self.contrast = self.neg_hit or self.remove_hit or self.same
            self.neg = self.remove = self.same = self.add = self.add_strong = self.coord = self.partial = False
            self.mode = None if self.mode in ("instead", "reference", "target") else self.mode
            self.left = []
        elif cue in ("MORE", "LESS"):
            self.graded = "more" if cue == "MORE" else "less"
        elif cue == "COMP":
            self._comparative(s.lemma)
        elif cue == "COMMA":
            self._comma(k)
        elif cue in ("AND", "OR"):
            self._coordinator(k, cue)
        elif cue == "PREP":
            if self.neg_hit or (self.neg_word and s.lemma in _LOCATIVE):
                self.neg = False
            if self.remove_hit:
                self.remove = False
            if self.mode == "reference":
                self.mode = None
        return k + 1

    def _add_cue(self, strong: bool) -> None:
        self.add, self.partial = True, False
        self.add_strong = self.add_strong or strong
        if self.mode == "instead" and self.instead_hit:
            self.mode = None  # "instead of a collar it has a hood"
        self.same = False
        if self.neg_hit:
            self.neg = False
        if self.remove_hit:
            self.remove = False

    def _instead(self) -> None:
        for e in self.left:
            if e.role in ("added", "mentioned") and not e.negated and e.match.sense.kind != "part":
                e.role, e.explicit = "added", True
        self.left, self.mode, self.neg, self.instead_hit = [], "instead", False, False

    def _to(self, k: int) -> None:
        if self.mode == "replace_src" or self.mode == "from_src":
            self.mode = "target"
            return
        prev_k = self._prev_content(k)
        nxt = self.next_content[k + 1]
        if (prev_k is not None and self.segs[prev_k].cue == "VAL" and nxt < len(self.segs)
                and self.segs[nxt].cue == "VAL" and self.prev is not None and not self.prev.negated):
            self.prev.role, self.prev.explicit = "removed", True  # "blue to white"
            self.mode = "target"

    def _prev_content(self, k: int) -> int | None:
        j = k - 1
        for _ in range(4):  # bounded: a value is at most a few fillers back
            if j < 0:
                return None
            if self.segs[j].cue not in _TRANSPARENT:
                return j
            j -= 1
        return None

    def _comma(self, k: int) -> None:
        goes_on = self.list_later[k]
        if (self.neg or self.remove) and not goes_on:
            self.neg = self.remove = False
            self.contrast = True  # "not navy, black"
        if self.mode in ("instead", "target", "reference") and not goes_on:
            self.mode = None
        self.same = self.add = self.add_strong = self.partial = False
        self.coord = goes_on

    def _coordinator(self, k: int, cue: str) -> None:
        if self.segs[k + 1].cue == "DET":
            # "less shiny and a brown colour": a new determiner starts a new phrase, which takes neither the
            # more/less nor the role of the value before "and".
            self.coord = self.partial = False
            self.carry = None
        else:
            self.coord = True
        nxt = self.next_nf[k + 1]
        nseg = self.segs[nxt] if nxt < len(self.segs) else None
        if self.neg and cue == "AND":
            if (nseg is None or nseg.cue != "VAL"
                    or (self.neg_class is not None and _class(nseg.match) != self.neg_class)):
                self.neg = False
        content = self.next_content[k + 1]
        if self.remove and cue == "AND" and (content >= len(self.segs) or self.segs[content].cue != "VAL"):
            self.remove = False  # "remove the red and the pink" goes on; "remove the red and add blue" does not

    # - values -

    def _value(self, k: int, s: _Seg) -> int:
        m = s.match
        e = _Entry(k, m)
        kind = m.sense.kind
        colourish = kind in ("colour", "shade")
        removable = kind in lx.GRADED_ADDS and m.sense.concept not in lx.GRADED_QUALITIES
        # "less fitted and purple", "more revealing and sleeveless": a more/less that graded a quality is
        # carried on to other qualities only; an attribute after "and" is asserted on its own.
        quality = kind in _DEGREE_KINDS or m.sense.concept in lx.GRADED_QUALITIES
        carried = self.carry is not None and self.coord and (quality or not self.carry_comp)
        graded_here = self.graded is not None or carried
        if self.open_comps and not colourish:
            self._attach_part(s.lemma)
            self.open_comps = []
            e.role = "mentioned"
        elif graded_here:
            word = self.graded or self.carry
            self.graded = None
            if removable:
                e.role, e.explicit = ("added" if word == "more" else "removed"), True
            else:
                self._graded_comparative(word, s.text)
                e.role = "mentioned"
            self.carry, self.carry_comp = word, not removable
        elif self.partial:
            e.role = "mentioned"
        elif self.mode in ("replace_src", "from_src", "subst_old"):
            e.role, e.explicit = "removed", True
        elif self.mode in ("target", "subst_new"):
            e.role, e.explicit = "added", True
        elif self.mode == "instead":
            e.role, e.negated, e.explicit = "removed", True, True
            self.instead_hit = True
        elif self.mode == "reference":
            e.role = "mentioned"
        elif self.neg and kind == "garment" and self.prev is not None and self.prev.negated \
                and self.prev.seg == k - 1:
            e.role = "mentioned"  # "no sleeved tank top", "not a red shirt": the noun after the negated word names the item
        elif self.neg and kind == "part" and self.prev is not None and self.prev.negated and self.prev.seg == k - 1:
            e.role = "mentioned"  # "not a white sole": every shoe has a sole, so the negation is of its colour
        elif self.neg:
            e.role, e.negated, e.explicit = "removed", True, True
            if not self.neg_hit:
                self.neg_hit, self.neg_class = True, _class(m)
        elif self.remove:
            e.role, e.explicit = "removed", True
            self.remove_hit = True
        elif self.same:
            e.role, e.shared = "mentioned", True
        elif self.add_strong or self.contrast:
            e.role, e.explicit = "added", True
        elif kind == "part" or m.sense.generic:
            e.role = "mentioned"
        elif self.add:
            e.role, e.explicit = "added", True
        elif self.coord and self.prev is not None and self.prev.explicit and self.prev.role in ("added", "removed") \
                and not self.prev.negated:  # a negation's reach is the scope's business alone
            e.role, e.explicit = self.prev.role, True
        else:
            e.role = "added"
        if not graded_here:
            self.carry = None
        before = self._prev_content(k)
        e.placed = before is not None and self.segs[before].lemma in _LOCATIVE
        self.contrast = False
        self.entries.append(e)
        self.left.append(e)
        self.prev = e
        self.coord = False
        return k + 1

    # - comparatives -

    def _comparative(self, word: str) -> None:
        quality, direction = lx.COMPARATIVES[word]
        self.comparatives.append(Comparative(word, quality, direction))
        self.open_comps.append(len(self.comparatives) - 1)
        self.comp_seen = True

    def _graded_comparative(self, word: str, what: str) -> None:
        self.comparatives.append(Comparative(f"{word} {what}", what, +1 if word == "more" else -1))
        self.open_comps = [len(self.comparatives) - 1]
        self.comp_seen = True

    def _graded_words(self, k: int) -> int:
        """more/less followed by plain words ("more pop culture", "less revealing"): one comparative of up
        to three words, which may then take a part ("more intricate lacing")."""
        word = self.graded or self.carry
        if self.graded is None and not self.coord:
            self.carry = None
            return k + 1
        self.graded = None
        words = []
        j = k
        while j < len(self.segs) and self.segs[j].cue == "WORD" and len(words) < 3:
            words.append(self.segs[j].text)
            j += 1
        self._graded_comparative(word, " ".join(words))
        self.carry, self.carry_comp = word, True
        self.coord = False
        return j

    def _attach_part(self, part: str) -> None:
        for idx in self.open_comps:
            c = self.comparatives[idx]
            self.comparatives[idx] = Comparative(f"{c.text} {part}", c.quality, c.direction, part)


def _template_sides(tokens: Sequence[Token], entries: list[_Entry]) -> tuple[str, str] | None:
    """For "replace A with B" whose sides name no known value (Fashion200K's "replace midi with maxi"): the
    sides as written, to keep as values."""
    if not tokens or tokens[0].lemma != "replace":
        return None
    if sum(1 for e in entries if e.match.sense.values and e.role in ("added", "removed")) >= 2:
        return None  # both sides named known values
    with_at = next((i for i, t in enumerate(tokens) if t.lemma == "with"), None)
    if with_at is None or with_at < 2 or with_at + 1 >= len(tokens):
        return None
    end = len(tokens)
    while end > with_at + 1 and tokens[end - 1].kind == "punct":
        end -= 1
    if any(t.kind != "word" for t in tokens[1:with_at]) or any(t.kind != "word" for t in tokens[with_at + 1:end]):
        return None
    source = " ".join(t.text for t in tokens[1:with_at] if t.lemma not in lx.FILLERS)
    target = " ".join(t.text for t in tokens[with_at + 1:end] if t.lemma not in lx.FILLERS)
    has_source = any(e.match.start < with_at and e.match.sense.values for e in entries)
    has_target = any(e.match.start > with_at and e.match.sense.values for e in entries)
    return (source if not has_source else "", target if not has_target else "")


def _dedupe(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _collect(entries: list[_Entry], comparatives: list[Comparative], sides: tuple[str, str] | None) -> CaptionRoles:
    if not any(e.role in ("added", "removed") for e in entries):
        for e in entries:  # a caption that names only an item ("tshirts", "a top one") asks for it
            if e.match.sense.generic and not e.shared and not e.placed and e.role == "mentioned":
                e.role = "added"
    added: list[str] = []
    removed: list[str] = []
    mentioned: list[str] = []
    negated: list[str] = []
    confidences: list[float] = []
    for e in entries:
        values = e.match.sense.values
        if not values:
            continue
        if e.role == "added":
            added += values
        elif e.role == "removed":
            removed += values
            if e.negated:
                negated += values
        else:
            mentioned += values
            continue
        conf = (1.0 if e.explicit else _DEFAULT_ROLE) * e.match.sense.near * (_TYPO if e.match.corrected else 1.0)
        confidences.append(conf)
    if sides is not None:
        source, target = sides
        if source:
            removed.append(source)
            confidences.append(1.0)
        if target:
            added.append(target)
            confidences.append(1.0)
    added_t, removed_t = _dedupe(added), _dedupe(removed)
    taken = set(added_t) | set(removed_t)
    mentioned_t = _dedupe(v for v in mentioned if v not in taken)
    if confidences:
        confidence = min(confidences)
    elif comparatives:
        confidence = 0.4
    elif mentioned_t:
        confidence = 0.3
    else:
        confidence = 0.0
    return CaptionRoles(added_t, removed_t, mentioned_t, _dedupe(negated), tuple(comparatives), round(confidence, 3))
