"""Final stage: metrics/corpus.json (funnel, lengths, diversity, categories, and the brainstorm
sampling scores: story diversity and coherence) and length plots."""

import csv
import json
from pathlib import Path

from synthempathy.diversity import sampling_metrics
from synthempathy.embeddings import Embedder
from synthempathy.errors import stage_main
from synthempathy.io import atomic_path, read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.report import corpus_report, length_histogram

STORIES = "data/stories.jsonl"
CORPUS = "data/corpus/synthempathy.jsonl"
FILTER_METRICS = "metrics/filter.json"  # the retention funnel, counted once by the filter stage
METRICS = "metrics/corpus.json"
LENGTH_PLOT = "metrics/plots/lengths.csv"


@stage_main
def main() -> None:
    corpus = read_jsonl(CORPUS, required=("id", "category", "explanation", "response"))
    funnel = json.loads(Path(FILTER_METRICS).read_text(encoding="utf-8"))["funnel"]["counts"]
    params = load_params()
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    stories = read_jsonl(STORIES, required=("id", "scenario_id", "scenario", "story"))
    sampling = sampling_metrics(stories, len(corpus), embedder.encode, params.align.min_scenario_similarity, params.report.diversity_sample)
    write_json_atomic(METRICS, {**corpus_report(funnel, corpus), "sampling": sampling})
    rows = length_histogram(corpus)
    with atomic_path(LENGTH_PLOT) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["words", "explanations", "responses"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
