"""The verified queries' phrasings as weighted word vectors, and the question compared to them.

Words and word pairs are weighted by how few queries use them (inverse document frequency
over the queries), so "stalled" or "win rate" decide and "deal" barely counts. A question's
score for a query is its best score against that query's phrasings: the geometric mean of the
cosine (how alike the two are) and the coverage (the share of the question's weight the
phrasing explains). A word no phrasing uses weighs as much as the rarest known word, so a
question about something else scores low.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

from revtops_kernel.agent.routing.text import STOPWORDS, fold, normalize, words
from revtops_kernel.agent.verified import VERIFIED_QUERIES, VerifiedQuery

Vector = dict[str, float]


def content_words(text: str) -> list[str]:
    """Folded words of normalized ``text`` without stopwords."""
    folded = (fold(w) for w in words(text) if w not in STOPWORDS)
    return [w for w in folded if w and w not in STOPWORDS]


def features(terms: Sequence[str]) -> list[str]:
    """Words and neighbouring word pairs ("win rate", "sales cycle")."""
    return list(terms) + [f"{a} {b}" for a, b in itertools.pairwise(terms)]


@dataclass(frozen=True)
class QueryIndex:
    idf: dict[str, float]
    unknown_weight: float
    vocabulary: frozenset[str]
    phrasings: dict[str, tuple[Vector, ...]]
    words: dict[str, frozenset[str]] = field(default_factory=dict)  # phrasings and keywords
    keywords: dict[str, frozenset[str]] = field(default_factory=dict)

    def spelling(self, word: str) -> str | None:
        """``word`` as the router knows it, allowing one typo (two in long words); words of
        four or five letters only with two letters swapped ("stgae"), so "cost" is not "lost"."""
        if word in self.vocabulary:
            return word
        if len(word) < 4 or word.isdigit():
            return None
        allowed = 2 if len(word) >= 9 else 1
        found = process.extractOne(word, self.vocabulary, scorer=OSA.distance, score_cutoff=allowed)
        if found is None:
            return None
        if len(word) <= 5 and sorted(found[0]) != sorted(word):
            return None
        return str(found[0])

    def foreign_words(self, name: str, terms: Sequence[str]) -> list[str]:
        """Keywords of other queries in the question that ``name`` never uses ("stalled deals
        with no champion" is about stalled deals, not only about single-threading)."""
        own = self.words.get(name, frozenset())
        others = set().union(*(k for n, k in self.keywords.items() if n != name))
        return [t for t in terms if t in others and t not in own]

    def vector(self, terms: Sequence[str]) -> Vector:
        counts = Counter(features(terms))
        vector: Vector = {}
        for term, count in counts.items():
            weight = self.idf.get(term)
            if weight is None:
                if " " in term:
                    continue  # an unknown pair: its unknown word already counts
                weight = self.unknown_weight
            vector[term] = weight * (1 + math.log(count))
        return vector

    def scores(self, terms: Sequence[str]) -> dict[str, float]:
        """Each query's best score (√(cosine × coverage)) against the question's ``terms``."""
        question = self.vector(terms)
        norm = math.sqrt(sum(v * v for v in question.values()))
        result: dict[str, float] = {}
        for name, vectors in self.phrasings.items():
            best = 0.0
            for vector in vectors:
                dot = sum(w * vector.get(t, 0.0) for t, w in question.items())
                if dot:
                    cosine = dot / (norm * _norm(vector))
                    covered = sum(w * w for t, w in question.items() if t in vector) / norm**2
                    best = max(best, math.sqrt(cosine * covered))
            result[name] = best
        return result


def _norm(vector: Vector) -> float:
    return math.sqrt(sum(v * v for v in vector.values()))


def build_index(queries: Iterable[VerifiedQuery]) -> QueryIndex:
    documents: dict[str, list[list[str]]] = {}
    keywords: dict[str, frozenset[str]] = {}
    for query in queries:
        keywords[query.name] = frozenset(fold(k) for k in query.keywords)
        if not query.phrasings:
            raise ValueError(f"verified query {query.name} has no phrasings for the router")
        documents[query.name] = [features(content_words(normalize(p))) for p in query.phrasings]
    frequency: Counter[str] = Counter()
    for phrasing_features in documents.values():
        frequency.update({term for phrasing in phrasing_features for term in phrasing})
    total = len(documents)
    idf = {term: math.log(1 + total / df) for term, df in frequency.items()}
    index = QueryIndex(
        idf=idf,
        unknown_weight=math.log(1 + total),
        vocabulary=frozenset(t for t in idf if " " not in t),
        phrasings={},
        words={
            name: frozenset(t for p in phrasings for t in p if " " not in t) | keywords[name]
            for name, phrasings in documents.items()
        },
        keywords=keywords,
    )
    for name, phrasing_features in documents.items():
        vectors = tuple(index.vector([t for t in p if " " not in t]) for p in phrasing_features)
        index.phrasings[name] = vectors
    return index


@cache
def default_index() -> QueryIndex:
    return build_index(VERIFIED_QUERIES.values())
