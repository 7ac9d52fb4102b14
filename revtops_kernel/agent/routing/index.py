"""The verified queries' phrasings as weighted word vectors, and the question compared to them.

Words and word pairs are weighted by how few queries use them (inverse document frequency
over the 13 queries), so "stalled" or "win rate" decide and "deal" barely counts. A question's
score for a query is its best cosine against that query's phrasings; a word no phrasing uses
weighs as much as the rarest known word, so a question about something else scores low.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from revtops_kernel.agent.routing.text import STOPWORDS, fold, normalize, words
from revtops_kernel.agent.verified import VERIFIED_QUERIES, VerifiedQuery

Vector = dict[str, float]


def content_words(text: str) -> list[str]:
    """Folded words of normalized ``text`` without stopwords."""
    folded = (fold(w) for w in words(text))
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
        """Each query's best cosine against the question's ``terms``."""
        question = self.vector(terms)
        norm = math.sqrt(sum(v * v for v in question.values()))
        result: dict[str, float] = {}
        for name, vectors in self.phrasings.items():
            best = 0.0
            for vector in vectors:
                dot = sum(w * vector.get(t, 0.0) for t, w in question.items())
                if dot:
                    best = max(best, dot / (norm * _norm(vector)))
            result[name] = best
        return result


def _norm(vector: Vector) -> float:
    return math.sqrt(sum(v * v for v in vector.values()))


def build_index(queries: Iterable[VerifiedQuery]) -> QueryIndex:
    documents: dict[str, list[list[str]]] = {}
    for query in queries:
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
    )
    for name, phrasing_features in documents.items():
        vectors = tuple(index.vector([t for t in p if " " not in t]) for p in phrasing_features)
        index.phrasings[name] = vectors
    return index


@cache
def default_index() -> QueryIndex:
    return build_index(VERIFIED_QUERIES.values())
