"""Diversity and coherence of brainstormed stories: what the brainstorm sampling search trades off.

The paper picks the brainstorm temperature/top_p that makes stories most diverse while they stay
coherent. Two headline scores, both in [0, 1]:

- ``diversity``: within-scenario diversity, the mean pairwise cosine distance (1 - cosine of
  MiniLM embeddings) among one scenario's stories, averaged over scenarios with >= 2 stories.
  Stories for the same stressor are what sampling must spread apart; across scenarios they
  differ anyway. Corpus-level distinct-1/2 and self-BLEU are reported beside it.
- ``coherence``: the mean of three shares, each 1 when all is well: ``on_topic`` (stories whose
  cosine to their scenario is >= align.min_scenario_similarity), ``survival`` (final corpus
  records per story: what the later stages and filters keep) and 1 - ``repetition`` (mean share
  of a story's 4-grams repeating an earlier one; hot sampling of a small model loops or rambles).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from synthempathy.align import row_cosines
from synthempathy.text import distinct_n, ngrams, repetition_ratio, words

Embed = Callable[[Sequence[str]], np.ndarray]
BLEU_MAX_N = 4
REPETITION_N = 4
DECIMALS = 4
SCORES = ("diversity", "coherence", "distinct_1", "distinct_2", "self_bleu", "on_topic", "survival", "repetition")


def within_group_diversity(vectors: np.ndarray, groups: Sequence[str]) -> float:
    """Mean pairwise cosine distance among rows of the same group (rows are unit norm), averaged
    over groups with >= 2 rows; 0 when there is no such group."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    means = []
    for group in sorted(members):
        rows = vectors[members[group]]
        if len(rows) < 2:
            continue
        upper = np.triu_indices(len(rows), k=1)
        means.append(float(np.mean(1.0 - (rows @ rows.T)[upper])))
    # Clip float noise: identical texts give cosines a hair above 1.
    return max(0.0, float(np.mean(means))) if means else 0.0


def _max_count_in_others(counts: Sequence[Counter]) -> Callable[[tuple, int], int]:
    """For each n-gram, keep its two largest counts and who holds the largest, so the highest
    count in any text but i costs O(1): self-BLEU stays linear in the sample, not quadratic."""
    top: dict[tuple, tuple[int, int, int]] = {}  # gram -> (best count, its text, second best)
    for i, counter in enumerate(counts):
        for gram, count in counter.items():
            best, holder, second = top.get(gram, (0, -1, 0))
            top[gram] = (count, i, best) if count > best else (best, holder, max(second, count))

    def lookup(gram: tuple, i: int) -> int:
        best, holder, second = top[gram]
        return second if holder == i else best

    return lookup


def self_bleu(texts: Sequence[str], max_n: int = BLEU_MAX_N) -> float:
    """Mean over texts of a BLEU-like score of each text against all the others as references:
    the geometric mean of its modified (clipped) n-gram precisions for n = 1..max_n, over the
    orders it is long enough for, with no brevity penalty. 1 when every text also occurs
    elsewhere; near 0 when texts share no phrasing."""
    if len(texts) < 2:
        return 0.0
    tokens = [words(t) for t in texts]
    log_precisions: list[list[float]] = [[] for _ in texts]
    for n in range(1, max_n + 1):
        counts = [Counter(ngrams(t, n)) for t in tokens]
        max_other = _max_count_in_others(counts)
        for i, counter in enumerate(counts):
            total = sum(counter.values())
            if total:
                clipped = sum(min(count, max_other(gram, i)) for gram, count in counter.items())
                log_precisions[i].append(np.log(clipped / total) if clipped else -np.inf)
    scores = [float(np.exp(np.mean(logs))) if logs else 0.0 for logs in log_precisions]
    return float(np.mean(scores))


def sample_by_id(records: Sequence[dict], size: int) -> list[dict]:
    """A fixed-size sample that depends only on the ids, so self-BLEU compares runs of any corpus
    size on the same number of texts, and adding records keeps most earlier picks."""
    return sorted(records, key=lambda r: hashlib.sha256(r["id"].encode("utf-8")).hexdigest())[:size]


def coherence_score(on_topic: float, survival: float, repetition: float) -> float:
    return (on_topic + survival + (1.0 - repetition)) / 3.0


def sampling_metrics(stories: Sequence[dict], final_count: int, embed: Embed, min_scenario_similarity: float, sample_size: int) -> dict:
    """Diversity and coherence of ``stories`` (records with id, scenario_id, scenario, story);
    ``final_count``: records in the final corpus made from them."""
    if not stories:  # nothing brainstormed: no diversity and nothing coherent
        return {**dict.fromkeys(SCORES, 0.0), "stories": 0, "self_bleu_sample": 0}
    texts = [s["story"] for s in stories]
    scenarios = sorted({s["scenario"] for s in stories})
    vectors = embed(texts + scenarios)  # one call: the embedder batches and caches them together
    story_vectors, scenario_vectors = vectors[: len(texts)], dict(zip(scenarios, vectors[len(texts) :], strict=True))
    own_scenario = np.stack([scenario_vectors[s["scenario"]] for s in stories])
    on_topic = float(np.mean(row_cosines(own_scenario, story_vectors) >= min_scenario_similarity))
    survival = min(1.0, final_count / len(stories))
    repetition = float(np.mean([repetition_ratio(t, REPETITION_N) for t in texts]))
    sample = sample_by_id(stories, sample_size)
    metrics = {
        "diversity": within_group_diversity(story_vectors, [s["scenario_id"] for s in stories]),
        "coherence": coherence_score(on_topic, survival, repetition),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "self_bleu": self_bleu([s["story"] for s in sample]),
        "on_topic": on_topic,
        "survival": survival,
        "repetition": repetition,
    }
    return {**{k: round(v, DECIMALS) for k, v in metrics.items()}, "stories": len(stories), "self_bleu_sample": len(sample)}
