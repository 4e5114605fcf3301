"""Stage: rule-based filters of the scored pairs -> the corpus, plus every stage's rejections
merged into one file, metrics with the reasons and the retention funnel, and the data of the
funnel and rejection plots."""

import logging
from collections import Counter
from pathlib import Path

from synthempathy.errors import InputError, stage_main
from synthempathy.filters import filter_pairs, merge_rejections, required_fields, retention_funnel
from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.plots import funnel_rows, rejection_rows, write_plot

log = logging.getLogger("filter")


def count_records(path: str) -> int:
    """Non-empty lines: counting 130k records needs no JSON parsing."""
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found; run the stage that produces it (dvc repro)")
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def funnel_files(specs: list[str]) -> dict[str, str]:
    """``step=path`` arguments, in pipeline order, as {step: path}."""
    steps = dict(spec.split("=", 1) for spec in specs)
    if len(steps) != len(specs):
        raise InputError(f"--funnel {' '.join(specs)}: give each step once, as step=path, in dvc.yaml")
    return steps


@stage_main("scored", "corpus", "rejected", "metrics", "upstream_rejected+", "funnel+", "funnel_plot", "rejection_plot")
def main(paths) -> None:
    params = load_params().filter
    result = filter_pairs(read_jsonl(paths.scored, required=required_fields(params)), params)
    upstream = [read_jsonl(path, required=("id", "stage", "reason")) for path in paths.upstream_rejected]
    all_rejected = merge_rejections([*upstream, result.rejected])
    funnel = retention_funnel({**{step: count_records(path) for step, path in funnel_files(paths.funnel).items()}, "final": len(result.kept)})
    write_jsonl_atomic(paths.corpus, result.kept)
    write_jsonl_atomic(paths.rejected, all_rejected)
    by_stage = dict(sorted(Counter(r["stage"] for r in all_rejected).items()))
    metrics = result.metrics()
    write_json_atomic(paths.metrics, {**metrics, "funnel": funnel, "rejected_by_stage": by_stage})
    write_plot(paths.funnel_plot, funnel_rows(funnel["counts"]), ("step", "records"))
    write_plot(paths.rejection_plot, rejection_rows(all_rejected), ("rejection", "stage", "reason", "records"))
    log.info(
        "kept %d of %d pairs; rejected: %s", len(result.kept), len(result.rejected) + len(result.kept), {k: v for k, v in metrics["rejected"].items() if v}
    )
    found = metrics["pii_scrubbed_by_type" if params.pii_policy == "scrub" else "pii_dropped_by_type"]
    log.info("PII spans (filter.pii_policy: %s): %s", params.pii_policy, {k: v for k, v in found.items() if v})


if __name__ == "__main__":
    main()
