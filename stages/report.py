"""Final stage: metrics/corpus.json (funnel, lengths, diversity, categories) and length plots."""

import csv

from synthempathy.errors import stage_main
from synthempathy.io import atomic_path, read_jsonl, write_json_atomic
from synthempathy.report import corpus_report, length_histogram

# Record count after each stage, in pipeline order; the last file is the final corpus.
FUNNEL = {
    "scenarios": "data/scenarios.jsonl",
    "stories": "data/stories.jsonl",
    "stories_dedup": "data/stories_dedup.jsonl",
    "explanations": "data/explanations.jsonl",
    "pairs": "data/pairs.jsonl",
}
METRICS = "metrics/corpus.json"
LENGTH_PLOT = "metrics/plots/lengths.csv"


@stage_main
def main() -> None:
    records = {stage: read_jsonl(path) for stage, path in FUNNEL.items()}
    corpus = records[list(FUNNEL)[-1]]
    write_json_atomic(METRICS, corpus_report({stage: len(r) for stage, r in records.items()}, corpus))
    rows = length_histogram(corpus)
    with atomic_path(LENGTH_PLOT) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["words", "explanations", "responses"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
