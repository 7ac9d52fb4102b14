"""Owner, pipeline and stage names in a question, matched against the names the caller knows.

rapidfuzz scores the candidates, so first names ("Sara's deals"), last names and typos ("jon
smth") still find their owner. A name two owners share is reported as ambiguous, never picked.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

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
    table = _owner_table(tuple(owners))
    if size >= 2:
        hits = process.extract(
            phrase, table.full_names, scorer=fuzz.token_sort_ratio,
            score_cutoff=OWNER_FULL_SCORE, limit=None,
        )  # fmt: skip
        scored = [(score, index) for _, score, index in hits]
    else:
        if len(phrase) < 3:
            return 0.0, []
        hits = process.extract(
            phrase, table.parts, scorer=fuzz.ratio, score_cutoff=OWNER_WORD_SCORE, limit=None
        )
        scored = [(score, table.part_owner[index]) for _, score, index in hits]
    if not scored:
        return 0.0, []
    top = max(score for score, _ in scored)
    who = sorted({index for score, index in scored if score == top})
    # a longer phrase that still matches is the stronger evidence ("jon smth" over "jon")
    return top + 10 * size, [table.owners[i] for i in who]


@dataclass(frozen=True)
class _OwnerTable:
    owners: tuple[OwnerName, ...]
    full_names: list[str]
    parts: list[str]  # first names, last names, email local parts
    part_owner: list[int]


@lru_cache(maxsize=16)
def _owner_table(owners: tuple[OwnerName, ...]) -> _OwnerTable:
    """The owners' names laid out once for rapidfuzz's batch scoring (cached per owner list)."""
    parts: list[str] = []
    part_owner: list[int] = []
    for index, owner in enumerate(owners):
        words = (owner.full_name or "").lower().split()
        if owner.email:
            words.append(owner.email.lower().split("@")[0])
        for word in words:
            parts.append(word)
            part_owner.append(index)
    return _OwnerTable(owners, [(o.full_name or "").lower() for o in owners], parts, part_owner)
