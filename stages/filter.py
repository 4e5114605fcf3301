"""Stage: rule-based filters, data/scored.jsonl -> data/corpus/synthempathy.jsonl, plus
data/rejected.jsonl (every stage's rejections), metrics/filter.json (reasons, funnel) and the
data of the funnel and rejection plots."""

import logging
from collections import Counter
from pathlib import Path

from synthempathy.errors import InputError, stage_main
from synthempathy.filters import filter_pairs, merge_rejections, required_fields, retention_funnel
from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.plots import funnel_rows, rejection_rows, write_plot

INPUT = "data/scored.jsonl"
OUTPUT = "data/corpus/synthempathy.jsonl"
REJECTED = "data/rejected.jsonl"
METRICS = "metrics/filter.json"
FUNNEL_PLOT = "metrics/plots/funnel.csv"
REJECTION_PLOT = "metrics/plots/rejections.csv"
UPSTREAM_REJECTED = [f"data/rejected/{stage}.jsonl" for stage in ("brainstorm", "dedup", "rewrite", "respond", "align")]
# Record count after each step, in pipeline order; "final" is this stage's output.
FUNNEL = {
    "scenarios": "data/scenarios.jsonl",
    "stories": "data/stories.jsonl",
    "stories_dedup": "data/stories_dedup.jsonl",
    "explanations": "data/explanations.jsonl",
    "pairs": "data/pairs.jsonl",
    "aligned": "data/aligned.jsonl",
    "scored": INPUT,
}

log = logging.getLogger("filter")


def count_records(path: str) -> int:
    """Non-empty lines: counting 130k records needs no JSON parsing."""
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found; run the stage that produces it (dvc repro)")
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


@stage_main
def main() -> None:
    params = load_params().filter
    kept, rejected, metrics = filter_pairs(read_jsonl(INPUT, required=required_fields(params)), params)
    upstream = [read_jsonl(path, required=("id", "stage", "reason")) for path in UPSTREAM_REJECTED if Path(path).is_file()]
    all_rejected = merge_rejections([*upstream, rejected])
    funnel = retention_funnel({**{step: count_records(path) for step, path in FUNNEL.items()}, "final": len(kept)})
    write_jsonl_atomic(OUTPUT, kept)
    write_jsonl_atomic(REJECTED, all_rejected)
    by_stage = dict(sorted(Counter(r["stage"] for r in all_rejected).items()))
    write_json_atomic(METRICS, {**metrics, "funnel": funnel, "rejected_by_stage": by_stage})
    write_plot(FUNNEL_PLOT, funnel_rows(funnel["counts"]), ("step", "records"))
    write_plot(REJECTION_PLOT, rejection_rows(all_rejected), ("rejection", "stage", "reason", "records"))
    log.info("kept %d of %d pairs; rejected: %s", len(kept), metrics["records_in"], {k: v for k, v in metrics["rejected"].items() if v})


if __name__ == "__main__":
    main()
