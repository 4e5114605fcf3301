"""Intent alignment and near-duplicate removal of (explanation, response) pairs.

Three cosines per pair, on unit-norm sentence embeddings: scenario~explanation (the
explanation stays on the SAD stressor), story~explanation (the rewrite is faithful) and
explanation~response (the response addresses it). A pair failing one is rejected with the
first failing check's reason; the explanations of the pairs left are then deduplicated
greedily in id order. Every decision is made on cosines rounded to 4 places, the values
written out, so outputs never depend on float noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from synthempathy.dedup.near_duplicate import NearDuplicateConfig, find_near_duplicates
from synthempathy.params import AlignParams
from synthempathy.records import sorted_by_id
from synthempathy.results import StageResult

STAGE = "align"
REQUIRED_FIELDS = ("id", "scenario", "story", "explanation", "response")
DECIMALS = 4
BIN_WIDTH = 0.02  # histogram bins over [-1, 1]; fine enough to place a threshold

# (similarity field, AlignParams threshold, rejection reason), in the order checked.
CHECKS = (
    ("scenario_similarity", "min_scenario_similarity", "off_topic_explanation"),
    ("story_similarity", "min_story_similarity", "unfaithful_rewrite"),
    ("response_similarity", "min_response_similarity", "off_topic_response"),
)
NEAR_DUPLICATE = "near_duplicate"
REASONS = tuple(reason for _, _, reason in CHECKS) + (NEAR_DUPLICATE,)
NEAREST = "nearest_explanation"  # histogram column: max cosine to any earlier explanation

Embed = Callable[[Sequence[str]], np.ndarray]


def rounded(values: np.ndarray) -> np.ndarray:
    """Round in float64: a float32 0.9 would compare below the threshold 0.9."""
    return np.round(np.asarray(values, dtype=np.float64), DECIMALS)


def pair_similarities(pairs: Sequence[dict], embed: Embed) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rounded cosines per pair (by similarity field) and the explanation embeddings.

    One ``embed`` call for all four texts: the embedder batches them together and embeds a
    scenario shared by many stories once.
    """
    n = len(pairs)
    fields = ("scenario", "story", "explanation", "response")
    vectors = embed([p[f] for f in fields for p in pairs])
    scenario, story, explanation, response = (vectors[k * n : (k + 1) * n] for k in range(len(fields)))
    sims = {
        "scenario_similarity": row_cosines(scenario, explanation),
        "story_similarity": row_cosines(story, explanation),
        "response_similarity": row_cosines(explanation, response),
    }
    return sims, explanation


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rounded cosine of each row of ``a`` with the same row of ``b`` (rows are unit norm)."""
    return rounded(np.einsum("ij,ij->i", a, b))


def first_failure(sims: dict[str, np.ndarray], params: AlignParams, i: int) -> tuple[str, str] | None:
    """(reason, detail) of pair i's first failed alignment check, or None if all pass."""
    for field, param, reason in CHECKS:
        value, bound = sims[field][i], getattr(params, param)
        if value < bound:
            return reason, f"{field}={value:.4f} < {param}={bound}"
    return None


def align_pairs(pairs: Sequence[dict], embed: Embed, params: AlignParams, progress: bool = False) -> tuple[StageResult, list[dict]]:
    """Keep aligned, non-duplicate pairs (with their similarity fields); reject the rest. Also
    returns the similarity histogram rows (all pairs, before thresholds) for the plots."""
    pairs = sorted_by_id(pairs)  # "earlier" in near-duplicate removal means earlier id
    sims, explanations = pair_similarities(pairs, embed)
    failures = [first_failure(sims, params, i) for i in range(len(pairs))]
    dups = find_near_duplicates(
        explanations,
        NearDuplicateConfig(threshold=params.near_duplicate_threshold, decimals=DECIMALS),
        eligible=np.array([f is None for f in failures], dtype=bool),
        progress=progress,
    )
    result = StageResult(STAGE, REASONS, records_in=len(pairs))
    for i, (pair, failure) in enumerate(zip(pairs, failures, strict=True)):
        if failure is None and dups.duplicate_of[i] >= 0:
            earlier = pairs[dups.duplicate_of[i]]["id"]
            failure = (NEAR_DUPLICATE, f"explanation cosine {dups.similarity[i]:.4f} to {earlier}")
        if failure is not None:
            result.reject(pair["id"], *failure)
        else:
            result.keep({**pair, **{field: float(sims[field][i]) for field, _, _ in CHECKS}})
    distributions = {**{field.removesuffix("_similarity"): sims[field] for field, _, _ in CHECKS}, NEAREST: dups.nearest}
    result.extra_metrics = {"similarity_quantiles": {name: quantiles(values) for name, values in distributions.items()}}
    return result, histogram(distributions)


def quantiles(values: np.ndarray) -> dict[str, float]:
    """Low quantiles (where thresholds sit) and the median, over the defined values."""
    values = values[~np.isnan(values)]
    if not len(values):
        return {}
    qs = {"p01": 0.01, "p05": 0.05, "p10": 0.10, "p50": 0.5, "p90": 0.9, "p99": 0.99}
    return {name: round(float(np.quantile(values, q)), DECIMALS) for name, q in qs.items()}


def histogram(distributions: dict[str, np.ndarray]) -> list[dict]:
    """One row per bin of width BIN_WIDTH over [-1, 1]: bin start and a count per distribution."""
    n_bins = round(2 / BIN_WIDTH)
    edges = np.linspace(-1.0, 1.0, n_bins + 1)
    counts = {name: np.histogram(v[~np.isnan(v)], bins=edges)[0] for name, v in distributions.items()}
    return [{"similarity": round(float(edges[b]), 2), **{name: int(c[b]) for name, c in counts.items()}} for b in range(n_bins)]
