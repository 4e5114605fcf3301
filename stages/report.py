"""Stage: the corpus report (funnel, lengths, diversity, categories, and the brainstorm sampling
scores: story diversity and coherence), the data of the corpus plots, and the review sheet (real
pairs, and one rejected record per reason, to read)."""

import json
from pathlib import Path

from synthempathy.diversity import sampling_metrics
from synthempathy.embeddings import Embedder
from synthempathy.errors import stage_main
from synthempathy.io import atomic_path, iter_jsonl, read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.plots import EMPATHY_FIELDS, category_rows, empathy_histogram, write_plot
from synthempathy.report import LENGTH_COLUMNS, corpus_report, length_histogram
from synthempathy.review import latest_records, rejection_examples, review_sheet


@stage_main(
    "scenarios", "stories", "corpus", "rejected", "stage_files+", "filter_metrics",
    "metrics", "length_plot", "category_plot", "empathy_plot", "review",
)  # fmt: skip
def main(paths) -> None:
    params = load_params()
    corpus = read_jsonl(paths.corpus, required=("id", "category", "explanation", "response", *EMPATHY_FIELDS))
    funnel = json.loads(Path(paths.filter_metrics).read_text(encoding="utf-8"))["funnel"]["counts"]  # counted once, by the filter stage
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    stories = read_jsonl(paths.stories, required=("id", "scenario_id", "scenario", "story"))
    scenarios = read_jsonl(paths.scenarios, required=("id", "text", "category", "severity"))
    sampling = sampling_metrics(stories, len(corpus), embedder.encode, params.align.min_scenario_similarity, params.report.diversity_sample)
    write_json_atomic(paths.metrics, {**corpus_report(funnel, corpus), "sampling": sampling})
    write_plot(paths.length_plot, length_histogram(corpus), LENGTH_COLUMNS)
    write_plot(paths.category_plot, category_rows(scenarios, corpus), ("category", "scenarios", "pairs"))
    write_plot(paths.empathy_plot, empathy_histogram(corpus), ("score", *EMPATHY_FIELDS))

    rejected = read_jsonl(paths.rejected, required=("id", "stage", "reason"))
    examples = rejection_examples(rejected, params.seed)
    # --stage-files: latest stage first, so a rejected record is found as the stage that dropped it received it.
    records = latest_records((e.rejection["id"] for e in examples), [iter_jsonl(path) for path in paths.stage_files], scenarios)
    sheet = review_sheet(corpus, examples, records, len(rejected), params.seed, params.report.review_sample, params.report.review_extremes, params.filter.pii)
    with atomic_path(paths.review) as tmp:
        tmp.write_text(sheet, encoding="utf-8")


if __name__ == "__main__":
    main()
