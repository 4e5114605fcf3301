"""Ablations of the fine-tuning claim (`make ablation`, README "Ablations").

The recipe and evaluation of `make paper`, trained on three sets: the filtered corpus, the
unfiltered pairs (the same scenarios generated without checks, before align and filter) and
human EPITOME responses. Each is compared at equal size and equal training steps (larger sets
subsampled, several seeds) and at full size, since the gain grows with data. Each row also
gives reply length and the share of replies asking a question, so a gain is not just longer or
more question-marked text.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from synthempathy.empathy.data import normalise_text
from synthempathy.export import chat_messages
from synthempathy.seeding import derive_seed

SOURCES = ("filtered", "unfiltered", "human")
SOURCE_LABELS = {
    "base": "base model (no tuning)",
    "filtered": "filtered corpus",
    "unfiltered": "unfiltered pairs (no checks, align or filter)",
    "human": "human EPITOME responses",
}


@dataclass(frozen=True)
class Run:
    source: str
    comparison: str  # "equal size" or "full size"
    size: int  # training pairs
    steps: int
    seed: int  # picks the subsample and seeds the LoRA run (init, dropout, data order)


def run_key(**parts) -> str:
    """A digest of everything a run's result depends on (the run, its training records, the
    recipe, the situations, the scorer): `make ablation` keeps each finished run under it, so a
    killed or extended ablation (more seeds) redoes only the runs it has not finished."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def human_sft_records(table: pd.DataFrame, exclude_texts: set[str]) -> list[dict]:
    """One SFT record per distinct EPITOME (seeker post, response) pair, in file order, leaving
    out posts that are evaluation situations (compared after whitespace normalisation)."""
    pairs = table.drop_duplicates(["sp_id", "rp_id"])
    return [
        {"id": f"epitome-{row.sp_id}-{row.rp_id}", "messages": chat_messages(row.seeker, row.response)}
        for row in pairs.itertuples()
        if normalise_text(row.seeker) not in exclude_texts and normalise_text(row.response)
    ]


def subsample(records: Sequence[dict], n: int, seed: int) -> list[dict]:
    """``n`` records ranked by a hash of (seed, id), kept in their original order; all of them
    (unchanged) when there are no more than ``n``."""
    if n >= len(records):
        return list(records)
    keep = set(sorted(range(len(records)), key=lambda i: derive_seed(seed, "ablation", records[i]["id"]))[:n])
    return [r for i, r in enumerate(records) if i in keep]


def plan_runs(sizes: Mapping[str, int], seeds: Sequence[int], steps_for: Callable[[int], int], max_full_size: int) -> tuple[list[Run], list[str]]:
    """The runs, and a line per full-size run left out (and why).

    Equal size: every source at the smallest set's size and its steps, once per seed. Full size:
    each source larger than that with all its pairs and the steps its size gives (first seed),
    unless it is larger than ``max_full_size`` (its steps would not fit the time budget).
    """
    equal = min(sizes.values())
    runs = [Run(source, "equal size", equal, steps_for(equal), seed) for source in SOURCES for seed in seeds]
    skipped = []
    for source in SOURCES:
        if sizes[source] <= equal:
            continue  # its equal-size runs already use all its pairs
        if sizes[source] > max_full_size:
            skipped.append(f"{source} at full size: {sizes[source]} pairs, {steps_for(sizes[source])} steps (over --max-full-size {max_full_size})")
            continue
        runs.append(Run(source, "full size", sizes[source], steps_for(sizes[source]), seeds[0]))
    return runs, skipped


def _mean_sd(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def summarise(results: Sequence[dict]) -> list[dict]:
    """One row per (source, comparison) over its seeds: means across seeds, and each seed's
    relative change and CI, so the spread between seeds stays visible."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["source"], r["comparison"]), []).append(r)
    rows = []
    for (source, comparison), runs in groups.items():
        e = [r["metrics"]["empathy"] for r in runs]
        rows.append(
            {
                "source": source,
                "comparison": comparison,
                "size": runs[0]["size"],
                "steps": runs[0]["steps"],
                "seeds": [r["seed"] for r in runs],
                "empathy": [x["tuned_mean"] for x in e],
                "relative_change": [x["relative_change"] for x in e],
                "difference_ci": [x["difference_ci"] for x in e],
                "std": [x["tuned_std"] for x in e],
                "mechanisms": {m: statistics.fmean(r["metrics"][m]["tuned_mean"] for r in runs) for m in ("er", "ip", "ex")},
                "mean_words": statistics.fmean(r["replies"]["mean_words"] for r in runs),
                "question_share": statistics.fmean(r["replies"]["question_share"] for r in runs),
            }
        )
    return rows


def markdown_table(base: Mapping, rows: Sequence[dict]) -> str:
    """The README's ablation table: the base model's row, then one row per set and comparison."""
    header = (
        "| trained on | comparison | pairs | steps | seeds | average empathy (mean ± sd over seeds) | change vs base, per seed | 95% CI of the difference, per seed "
        "| std of empathy | ER / IP / EX | reply words | replies with a question |"
    )
    lines = [header, "|" + "---|" * 12]
    b = base["metrics"]
    lines.append(
        f"| {SOURCE_LABELS['base']} | | 0 | 0 | | {b['empathy']['base_mean']:.3f} | | | {b['empathy']['base_std']:.3f} "
        f"| {b['er']['base_mean']:.2f} / {b['ip']['base_mean']:.2f} / {b['ex']['base_mean']:.2f} | {base['replies']['mean_words']:.1f} "
        f"| {base['replies']['question_share']:.2f} |"
    )
    for row in rows:
        changes = ", ".join(f"{100 * c:+.1f}%" for c in row["relative_change"])
        cis = ", ".join(f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in row["difference_ci"])
        m = row["mechanisms"]
        lines.append(
            f"| {SOURCE_LABELS[row['source']]} | {row['comparison']} | {row['size']} | {row['steps']} | {len(row['seeds'])} | {_mean_sd(row['empathy'])} "
            f"| {changes} | {cis} | {_mean_sd(row['std'])} | {m['er']:.2f} / {m['ip']:.2f} / {m['ex']:.2f} | {row['mean_words']:.1f} | {row['question_share']:.2f} |"
        )
    return "\n".join(lines) + "\n"
