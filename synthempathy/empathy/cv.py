"""Grouped cross-validation of the pair encoder against the baselines, on the same folds, and the
reliability (calibration) table of the expected level, the score the pipeline uses.

Folds are grouped by seeker post (no post, nor any of its responses, is on both sides) and
stratified by the pair's three levels together, so every fold holds the rare weak levels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold

from .data import LEVELS, MECHANISMS

log = logging.getLogger(__name__)

# Bins of the expected level (0-2) in the reliability table.
RELIABILITY_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)

# (train rows, test rows) -> {system: ((test pairs, mechanism, level) probabilities, (test pairs, mechanism) levels)}
FoldPredictor = Callable[[np.ndarray, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


def grouped_folds(table: pd.DataFrame, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of ``folds`` folds grouped by sp_id, stratified by (er, ip, ex)."""
    strata = sum(table[m].to_numpy() * len(LEVELS) ** k for k, m in enumerate(MECHANISMS))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(table, strata, table["sp_id"]))


def expected_level(probabilities: np.ndarray) -> np.ndarray:
    """sum(level * p(level)) over the last axis: the score the pipeline reports (0-2)."""
    return probabilities @ np.asarray(LEVELS, dtype=np.float64)


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 of the predicted levels, and the mean absolute error of the expected level."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(LEVELS), average="macro", zero_division=0)),
        "expected_level_mae": float(np.abs(expected_level(probabilities) - y_true).mean()),
    }


def mean_std(scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per metric, the mean and (population) std over folds, to 4 places."""
    out = {}
    for metric in scores[0]:
        values = np.array([s[metric] for s in scores])
        out[metric], out[f"{metric}_std"] = round(float(values.mean()), 4), round(float(values.std()), 4)
    return out


def reliability_table(y_true: np.ndarray, probabilities: np.ndarray) -> dict:
    """Expected level vs the annotated level, binned by the expected level.

    Per bin: pairs, mean expected level, mean annotated level. ``calibration_error`` is the
    pair-weighted mean |expected - annotated| over bins (0 = the score means what it says).
    """
    expected = expected_level(probabilities)
    bins = np.clip(np.digitize(expected, RELIABILITY_EDGES[1:-1]), 0, len(RELIABILITY_EDGES) - 2)
    rows, gap = [], 0.0
    for b in range(len(RELIABILITY_EDGES) - 1):
        inside = bins == b
        if not inside.any():
            continue
        predicted, observed = float(expected[inside].mean()), float(y_true[inside].mean())
        gap += inside.sum() * abs(predicted - observed)
        rows.append(
            {
                "bin": f"{RELIABILITY_EDGES[b]:.2f}-{RELIABILITY_EDGES[b + 1]:.2f}",
                "pairs": int(inside.sum()),
                "expected": round(predicted, 4),
                "annotated": round(observed, 4),
            }
        )
    return {"bins": rows, "calibration_error": round(gap / len(y_true), 4)}


def cross_validate(table: pd.DataFrame, folds: Sequence[tuple[np.ndarray, np.ndarray]], predict: FoldPredictor) -> dict:
    """Per mechanism and system, mean and std over folds of ``classification_metrics``, and per
    mechanism and system the reliability table of the out-of-fold predictions."""
    per_fold: dict[str, dict[str, list]] = {m: {} for m in MECHANISMS}
    out_of_fold: dict[str, np.ndarray] = {}
    for k, (train, test) in enumerate(folds, start=1):
        for system, (probabilities, levels) in predict(train, test).items():
            out_of_fold.setdefault(system, np.zeros((len(table), len(MECHANISMS), len(LEVELS))))[test] = probabilities
            for j, m in enumerate(MECHANISMS):
                per_fold[m].setdefault(system, []).append(classification_metrics(table[m].to_numpy()[test], probabilities[:, j], levels[:, j]))
        log.info("fold %d/%d: %s", k, len(folds), "; ".join(f"{s} IP macro-F1 {v[-1]['macro_f1']:.3f}" for s, v in per_fold["ip"].items()))
    return {
        "cv": {m: {system: mean_std(scores) for system, scores in systems.items()} for m, systems in per_fold.items()},
        "reliability": {m: {system: reliability_table(table[m].to_numpy(), p[:, j]) for system, p in out_of_fold.items()} for j, m in enumerate(MECHANISMS)},
    }


# Sharma et al. 2020's RoBERTa classifier as replicated on the same Reddit data (issue 15): the bar.
PUBLISHED = {"er": {"accuracy": 0.82, "macro_f1": 0.75}, "ip": {"accuracy": 0.84, "macro_f1": 0.70}, "ex": {"accuracy": 0.91, "macro_f1": 0.64}}


def markdown_report(result: dict) -> str:
    """The CV table (mean ± std over folds) and the model's and baseline's reliability tables."""
    lines = [
        f"# EPITOME scorer: grouped {result['folds']}-fold CV ({result['pairs']} pairs, {result['posts']} seeker posts)",
        "",
        "Accuracy and macro-F1 of the predicted level (the model's: argmax p / prior^decision_power; the others': argmax p); MAE: mean |expected level - annotated level|.",
        "",
        "| mechanism | system | accuracy | macro-F1 | MAE |",
        "|---|---|---|---|---|",
    ]
    for m, systems in result["cv"].items():
        for system, s in systems.items():
            lines.append(
                f"| {m.upper()} | {system} | {s['accuracy']:.3f} ± {s['accuracy_std']:.3f} | {s['macro_f1']:.3f} ± {s['macro_f1_std']:.3f} | {s['expected_level_mae']:.3f} |"
            )
        lines.append(f"| {m.upper()} | published RoBERTa | {PUBLISHED[m]['accuracy']:.2f} | {PUBLISHED[m]['macro_f1']:.2f} | |")
    lines += [
        "",
        "## Reliability of the expected level (out-of-fold)",
        "",
        "Pairs binned by the expected level; a calibrated score has expected ≈ annotated in every bin.",
        "",
    ]
    for m, systems in result["reliability"].items():
        for system in ("model", "baseline"):
            table = systems.get(system)
            if table is None:
                continue
            lines += [
                f"**{m.upper()}, {system}** (calibration error {table['calibration_error']:.3f})",
                "",
                "| expected level bin | pairs | mean expected | mean annotated |",
                "|---|---|---|---|",
            ]
            lines += [f"| {row['bin']} | {row['pairs']} | {row['expected']:.3f} | {row['annotated']:.3f} |" for row in table["bins"]]
            lines.append("")
    return "\n".join(lines)
