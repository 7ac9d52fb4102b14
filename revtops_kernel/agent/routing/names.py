"""Owner, pipeline and stage names in a question, matched against the names the caller knows.

rapidfuzz scores the candidates, so first names ("Sara's deals"), last names and typos ("jon
smth") still find their owner. A name two owners share is reported as ambiguous, never picked.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from revtops_kernel.agent.routing.text import STOPWORDS, fold

_WORD_SPANS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
OWNER_WORD_SCORE = 85  # one word against a first or last name (one typo in a 4-7 letter name)
OWNER_FULL_SCORE = 80  # two or three words against a full name
LABEL_SCORE = 88  # pipeline and stage names: close to exact
# A label made only of these ("Closed Won", "New") says how a question is asked, not which
# records: it is not taken as a name.
GENERIC_LABEL_WORDS = frozenset({"closed", "won", "lost", "open", "new", "deal", "pipeline",
                                 "default", "sale", "stage"})  # fmt: skip


@dataclass(frozen=True)
class OwnerName:
    """An owner as the router sees it; ``owner`` parameters take the full name (or email)."""

    full_name: str | None
    email: str | None = None

    @property
    def value(self) -> str | None:
        return self.full_name or self.email


@dataclass(frozen=True)
class NameMatch:
    kind: str  # "owner", "pipeline", "stage"
    value: str  # as the SQL parameter takes it
    span: tuple[int, int]
    ambiguous: tuple[str, ...] = ()  # the owners a shared name could be


@dataclass(frozen=True)
class _Word:
    text: str
    span: tuple[int, int]


def _free_words(text: str, taken: Sequence[tuple[int, int]]) -> list[_Word]:
    return [
        _Word(m.group(0), m.span())
        for m in _WORD_SPANS.finditer(text)
        if not any(m.start() < b and a < m.end() for a, b in taken)
    ]


def find_labels(
    text: str,
    taken: Sequence[tuple[int, int]],
    kind: str,
    labels: Sequence[str],
) -> list[NameMatch]:
    """Pipeline or stage names in ``text``; a name made only of generic words ("Closed Won")
    is skipped."""
    words = _free_words(text, taken)
    folded = [fold(w.text) for w in words]
    found: list[NameMatch] = []
    for label in labels:
        label_words = [fold(w) for w in _WORD_SPANS.findall(label.lower())]
        if all(w in GENERIC_LABEL_WORDS or w in STOPWORDS for w in label_words):
            continue
        size = len(label_words)
        target = " ".join(label_words)
        best: tuple[float, int] | None = None
        for i in range(len(words) - size + 1):
            window = folded[i : i + size]
            if any(w in STOPWORDS for w in window):
                continue
            score = fuzz.ratio(" ".join(window), target)
            if score >= LABEL_SCORE and (best is None or score > best[0]):
                best = (score, i)
        if best is not None:
            first, last = words[best[1]], words[best[1] + size - 1]
            found.append(NameMatch(kind, label, (first.span[0], last.span[1])))
    return found


def find_owner(
    text: str,
    taken: Sequence[tuple[int, int]],
    owners: Sequence[OwnerName],
    vocabulary: Collection[str],
) -> NameMatch | None:
    """The owner a question names, from runs of words that are not the router's own words."""
    named = [o for o in owners if o.value]
    if not named:
        return None
    best: tuple[float, tuple[int, int], list[OwnerName]] | None = None
    for run in _runs(_free_words(text, taken), vocabulary):
        for size in range(min(3, len(run)), 0, -1):
            for i in range(len(run) - size + 1):
                window = run[i : i + size]
                phrase = " ".join(_bare(w.text) for w in window)
                score, who = _best_owners(phrase, size, named)
                span = (window[0].span[0], window[-1].span[1])
                if who and (best is None or score > best[0]):
                    best = (score, span, who)
    if best is None:
        return None
    _, span, who = best
    if len({o.value for o in who}) > 1:
        names = tuple(sorted(str(o.value) for o in who))
        return NameMatch("owner", names[0], span, ambiguous=names)
    return NameMatch("owner", str(who[0].value), span)


def _bare(word: str) -> str:
    return word[:-2] if word.endswith("'s") else word.replace("'", "")


def _runs(words: list[_Word], vocabulary: Collection[str]) -> list[list[_Word]]:
    """Consecutive words that could be a name: not stopwords, not words the router knows."""
    runs: list[list[_Word]] = []
    current: list[_Word] = []
    for word in words:
        bare = _bare(word.text)
        if bare in STOPWORDS or fold(word.text) in vocabulary or bare.isdigit() or len(bare) < 2:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(word)
    if current:
        runs.append(current)
    return runs


def _best_owners(
    phrase: str, size: int, owners: Sequence[OwnerName]
) -> tuple[float, list[OwnerName]]:
    """The highest score any owner gets for ``phrase``, and every owner with that score."""
    top = 0.0
    who: list[OwnerName] = []
    for owner in owners:
        name = (owner.full_name or "").lower()
        parts = name.split()
        if size >= 2:
            score = fuzz.token_sort_ratio(phrase, name) if name else 0.0
            if score < OWNER_FULL_SCORE:
                continue
        else:
            candidates = parts + ([owner.email.lower().split("@")[0]] if owner.email else [])
            score = max((fuzz.ratio(phrase, p) for p in candidates if p), default=0.0)
            if score < OWNER_WORD_SCORE or len(phrase) < 3:
                continue
        score += size  # a longer phrase that matches is the stronger evidence
        if score > top:
            top, who = score, [owner]
        elif score == top:
            who.append(owner)
    return top, who
