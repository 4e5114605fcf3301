"""Word-level text utilities shared by every stage (filters, reports): one tokenizer for all.

Words are runs of letters/digits with inner apostrophes ("don't", "I'm" stay one word), so
counts and n-grams agree across the filter rules and the corpus report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"\w+(?:['’]\w+)*")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``; punctuation and whitespace are separators."""
    return _WORD.findall(text.lower())


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Contiguous n-grams in order (with repeats); empty if there are fewer than n tokens."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``texts`` (Li et al. 2016); 0 when there are none."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(ngrams(words(text), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def repetition_ratio(text: str, n: int) -> float:
    """Share of the text's n-grams that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    return 1.0 - distinct_n([text], n) if word_count(text) >= n else 0.0


def ngram_overlap(text: str, source: str, n: int) -> float:
    """Share of ``text``'s n-grams that also occur in ``source`` (how much of it is copied)."""
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    seen = set(ngrams(words(source), n))
    return sum(g in seen for g in grams) / len(grams)
