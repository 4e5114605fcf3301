"""Final stage: metrics/corpus.json (funnel, lengths, diversity, categories, and the brainstorm
sampling scores: story diversity and coherence), the data of the corpus plots, and the review
sheet data/corpus/review.md (real pairs and rejected records to read)."""

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

SCENARIOS = "data/scenarios.jsonl"
STORIES = "data/stories.jsonl"
CORPUS = "data/corpus/synthempathy.jsonl"
REJECTED = "data/rejected.jsonl"
# Where a rejected record's text is, latest stage first: the first file holding its id has it
# as the stage that dropped it received it.
STAGE_FILES = ("data/scored.jsonl", "data/pairs.jsonl", "data/explanations.jsonl", "data/stories_dedup.jsonl", STORIES)
FILTER_METRICS = "metrics/filter.json"  # the retention funnel, counted once by the filter stage
METRICS = "metrics/corpus.json"
LENGTH_PLOT = "metrics/plots/lengths.csv"
CATEGORY_PLOT = "metrics/plots/categories.csv"
EMPATHY_PLOT = "metrics/plots/empathy.csv"
REVIEW = "data/corpus/review.md"


@stage_main
def main() -> None:
    params = load_params()
    corpus = read_jsonl(CORPUS, required=("id", "category", "explanation", "response", *EMPATHY_FIELDS))
    funnel = json.loads(Path(FILTER_METRICS).read_text(encoding="utf-8"))["funnel"]["counts"]
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    stories = read_jsonl(STORIES, required=("id", "scenario_id", "scenario", "story"))
    scenarios = read_jsonl(SCENARIOS, required=("id", "text", "category", "severity"))
    sampling = sampling_metrics(stories, len(corpus), embedder.encode, params.align.min_scenario_similarity, params.report.diversity_sample)
    write_json_atomic(METRICS, {**corpus_report(funnel, corpus), "sampling": sampling})
    write_plot(LENGTH_PLOT, length_histogram(corpus), LENGTH_COLUMNS)
    write_plot(CATEGORY_PLOT, category_rows(scenarios, corpus), ("category", "scenarios", "pairs"))
    write_plot(EMPATHY_PLOT, empathy_histogram(corpus), ("score", *EMPATHY_FIELDS))

    rejected = read_jsonl(REJECTED, required=("id", "stage", "reason"))
    examples = rejection_examples(rejected, params.seed)
    records = latest_records((e.rejection["id"] for e in examples), [iter_jsonl(path) for path in STAGE_FILES], scenarios)
    sheet = review_sheet(corpus, examples, records, len(rejected), params.seed, params.report.review_sample, params.report.review_extremes)
    with atomic_path(REVIEW) as tmp:
        tmp.write_text(sheet, encoding="utf-8")


if __name__ == "__main__":
    main()
