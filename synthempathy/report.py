"""Corpus report: the funnel, lengths next to the paper's, lexical diversity, category mix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from synthempathy.text import distinct_n, word_count

# SYNTHEMPATHY (arXiv 2502.17857), for side-by-side reading of our numbers.
PAPER = {"pairs": 105578, "explanation_words_mean": 95.5, "response_words_mean": 153.7}
LENGTH_BIN_WORDS = 10
# Columns of metrics/plots/lengths.csv: per bin the texts of each kind, and on every row the
# paper's mean lengths, which the plot's template (.dvc/plots/lengths_vs_paper.json) marks.
LENGTH_COLUMNS = ("words", "explanations", "responses", "paper_explanations_mean", "paper_responses_mean")


def length_stats(texts: Sequence[str]) -> dict:
    counts = np.array([word_count(t) for t in texts], dtype=float)
    if counts.size == 0:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0}
    return {
        "mean": round(float(counts.mean()), 2),
        "median": round(float(np.median(counts)), 2),
        "p95": round(float(np.percentile(counts, 95)), 2),
    }


def corpus_report(funnel: Mapping[str, int], corpus: Sequence[dict]) -> dict:
    """``funnel``: record count after each stage, in pipeline order; ``corpus``: the final pairs."""
    return {
        "funnel": dict(funnel),
        "explanation_words": length_stats([r["explanation"] for r in corpus]),
        "response_words": length_stats([r["response"] for r in corpus]),
        "response_distinct_1": round(distinct_n((r["response"] for r in corpus), 1), 4),
        "response_distinct_2": round(distinct_n((r["response"] for r in corpus), 2), 4),
        "pairs_per_category": dict(sorted(Counter(r["category"] for r in corpus).items())),
        "paper": PAPER,
    }


def length_histogram(corpus: Sequence[dict], bin_words: int = LENGTH_BIN_WORDS) -> list[dict]:
    """Rows of the dvc plots length distribution: texts per bin of words (bin start), with the
    paper's means beside them; the bins reach past the longest text and the paper's means."""
    explanations = Counter(word_count(r["explanation"]) // bin_words for r in corpus)
    responses = Counter(word_count(r["response"]) // bin_words for r in corpus)
    paper = {"paper_explanations_mean": PAPER["explanation_words_mean"], "paper_responses_mean": PAPER["response_words_mean"]}
    top = max([*explanations, *responses, *(int(mean) // bin_words for mean in paper.values())])
    return [{"words": b * bin_words, "explanations": explanations[b], "responses": responses[b], **paper} for b in range(top + 1)]
