"""Data of the `dvc plots` declared in dvc.yaml: small tables the stages write beside their metrics.

Pure functions turn a stage's results into rows; ``write_plot`` writes them atomically, as CSV
or JSON by the file's suffix (JSON where a vega-lite template of .dvc/plots/ reads columns that
are no axis: CSV values reach vega as strings). Counts and rounded scores only, never timings,
so the files rebuild byte for byte.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from synthempathy.empathy.data import LEVELS, MECHANISMS
from synthempathy.io import atomic_path, write_json_atomic

EMPATHY_BIN = 0.1  # width of the score bins of the empathy histogram (scores run 0-2)
EMPATHY_FIELDS = (*MECHANISMS, "empathy")  # ER, IP, EX expected levels and their mean


def funnel_rows(counts: Mapping[str, int]) -> list[dict]:
    """One row per pipeline step, in pipeline order: the records left after it."""
    return [{"step": step, "records": n} for step, n in counts.items()]


def rejection_rows(rejections: Iterable[Mapping]) -> list[dict]:
    """Records dropped per (stage, reason), most frequent first (ties by stage, then reason)."""
    counts = Counter((r["stage"], r["reason"]) for r in rejections)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"rejection": f"{stage}: {reason}", "stage": stage, "reason": reason, "records": n} for (stage, reason), n in ordered]


def category_rows(scenarios: Iterable[Mapping], corpus: Iterable[Mapping]) -> list[dict]:
    """Per SAD category: scenarios asked for (sampled) and final pairs, by category name."""
    asked = Counter(s["category"] for s in scenarios)
    kept = Counter(r["category"] for r in corpus)
    return [{"category": c, "scenarios": asked[c], "pairs": kept[c]} for c in sorted(asked.keys() | kept.keys())]


def empathy_histogram(corpus: Sequence[Mapping], bin_width: float = EMPATHY_BIN) -> list[dict]:
    """Pairs per score bin (bin start) for ER, IP, EX and their mean; every bin from 0 to the top
    level, so two corpus versions always have the same rows. The top score falls in the last bin."""
    n_bins = round(max(LEVELS) / bin_width)

    def bin_of(score: float) -> int:
        return min(math.floor(round(score / bin_width, 6)), n_bins - 1)  # round: 0.3 / 0.1 = 2.9999...

    counts = {field: Counter(bin_of(r[field]) for r in corpus) for field in EMPATHY_FIELDS}
    return [{"score": round(b * bin_width, 4), **{field: counts[field][b] for field in EMPATHY_FIELDS}} for b in range(n_bins)]


def base_vs_tuned_rows(metrics: Mapping, mechanisms: Sequence[str]) -> list[dict]:
    """Per mechanism of metrics/finetune.json, in the given order: base and tuned means, their
    difference (tuned - base) and its bootstrap confidence interval."""
    return [
        {
            "mechanism": mechanism,
            "base": metrics[mechanism]["base_mean"],
            "tuned": metrics[mechanism]["tuned_mean"],
            "difference": metrics[mechanism]["difference"],
            "ci_low": metrics[mechanism]["difference_ci"][0],
            "ci_high": metrics[mechanism]["difference_ci"][1],
        }
        for mechanism in mechanisms
    ]


def write_plot(path: str | os.PathLike, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
    """Write ``rows`` (their ``columns``, in order) as CSV or as a JSON list, atomically."""
    if Path(path).suffix == ".json":
        write_json_atomic(path, [{c: row[c] for c in columns} for row in rows])
        return
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
