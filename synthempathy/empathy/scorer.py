"""Scoring (seeker post, response) pairs with the fitted pair encoder, and summaries of scores.

A pair's score per mechanism is the expected level, sum of level * probability (0-2); its
``empathy`` is the mean over ER, IP and EX, the measure SYNTHEMPATHY reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from synthempathy.errors import InputError

from .cv import expected_level
from .data import LEVELS, MECHANISMS, normalise_text
from .encoder import FrozenEncoder, PairModel, levels, predict_proba, torch_threads
from .store import read_scorer

log = logging.getLogger(__name__)

DEFAULT_DIR = "models/empathy_scorer"


class EmpathyScorer:
    """The tuned pair model plus the frozen encoder layers below it."""

    def __init__(self, model: PairModel, frozen: FrozenEncoder, threads: int) -> None:
        self.model, self.frozen, self.threads = model, frozen, threads

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """(pairs, mechanism, level) probabilities of non-empty pairs; each distinct text is
        encoded once (a post with several responses, as in evaluate, costs one pass)."""
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        with torch_threads(self.threads):
            states = dict(zip(texts, self.frozen.states(texts, progress=len(texts) > 2000), strict=True))
        return predict_proba(self.model, [states[s] for s, _ in pairs], [states[r] for _, r in pairs], self.threads)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[dict]:
        """Per (seeker post, response): ``<m>_level`` (``encoder.levels``) and ``<m>`` (expected level) for m
        in er, ip, ex, and ``empathy``, their mean (0-2).

        An empty response communicates nothing, so it scores level 0 everywhere (EPITOME's
        "no communication"); an empty seeker post is the caller's error.
        """
        seekers, responses = [normalise_text(s) for s, _ in pairs], [normalise_text(r) for _, r in pairs]
        if not all(seekers):
            raise InputError(f"pair {seekers.index('')}: empty seeker post; drop the pair before scoring")
        results = [{**{f"{m}_level": 0 for m in MECHANISMS}, **{m: 0.0 for m in MECHANISMS}} for _ in pairs]
        rows = [i for i, r in enumerate(responses) if r]
        if len(rows) < len(pairs):
            log.warning("scored %d empty response(s) as level 0", len(pairs) - len(rows))
        if rows:
            probabilities = self.probabilities([(seekers[i], responses[i]) for i in rows])
            picked, expected = np.asarray(LEVELS)[levels(self.model, probabilities)], expected_level(probabilities)
            for n, i in enumerate(rows):
                for j, m in enumerate(MECHANISMS):
                    results[i][f"{m}_level"], results[i][m] = int(picked[n, j]), float(expected[n, j])
        for result in results:
            result["empathy"] = float(np.mean([result[m] for m in MECHANISMS]))
        return results


def load_scorer(path: str | Path = DEFAULT_DIR) -> EmpathyScorer:
    """The fitted scorer in ``path`` (see ``store``)."""
    model, frozen, params = read_scorer(path)
    return EmpathyScorer(model, frozen, params.threads)


def score(pairs: Sequence[tuple[str, str]], scorer_dir: str | Path = DEFAULT_DIR) -> list[dict]:
    """One-off scoring; to score several batches, call ``load_scorer`` once and reuse it."""
    return load_scorer(scorer_dir).score(pairs)


def score_records(records: Sequence[dict], scorer: EmpathyScorer, source: str = "records") -> list[dict]:
    """Each pair record (seeker post = ``explanation``) with its scores added, floats to 4 places."""
    for n, record in enumerate(records, start=1):
        if not isinstance(record["explanation"], str) or not normalise_text(record["explanation"]) or not isinstance(record["response"], str):
            raise InputError(
                f"{source}: record {n} (id={record.get('id')}): explanation must be a non-empty string and response a string; regenerate the file with dvc repro"
            )
    scores = scorer.score([(r["explanation"], r["response"]) for r in records])
    return [{**record, **{k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}} for record, s in zip(records, scores, strict=True)]


def summarise(scored: Sequence[Mapping]) -> dict:
    """Mean and (population) std of er, ip, ex and empathy, and each mechanism's level counts."""
    summary: dict = {"n": len(scored)}
    for key in (*MECHANISMS, "empathy"):
        values = np.array([r[key] for r in scored], dtype=float)
        summary[key] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)} if len(values) else {"mean": None, "std": None}
    summary["levels"] = {m: {str(level): sum(r[f"{m}_level"] == level for r in scored) for level in LEVELS} for m in MECHANISMS}
    return summary
