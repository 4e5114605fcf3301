"""Stage: the corpus report (funnel, lengths, diversity, categories, and the brainstorm sampling
scores: story diversity and coherence) and the length plot data."""

import csv
import json
from pathlib import Path

from synthempathy.diversity import sampling_metrics
from synthempathy.embeddings import Embedder
from synthempathy.errors import stage_main
from synthempathy.io import atomic_path, read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.report import corpus_report, length_histogram


@stage_main("stories", "corpus", "filter_metrics", "metrics", "length_plot")
def main(paths) -> None:
    corpus = read_jsonl(paths.corpus, required=("id", "category", "explanation", "response"))
    funnel = json.loads(Path(paths.filter_metrics).read_text(encoding="utf-8"))["funnel"]["counts"]  # counted once, by the filter stage
    params = load_params()
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    stories = read_jsonl(paths.stories, required=("id", "scenario_id", "scenario", "story"))
    sampling = sampling_metrics(stories, len(corpus), embedder.encode, params.align.min_scenario_similarity, params.report.diversity_sample)
    write_json_atomic(paths.metrics, {**corpus_report(funnel, corpus), "sampling": sampling})
    with atomic_path(paths.length_plot) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["words", "explanations", "responses"])
        writer.writeheader()
        writer.writerows(length_histogram(corpus))


if __name__ == "__main__":
    main()
