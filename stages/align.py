"""Stage: intent alignment + near-duplicate removal, data/pairs.jsonl -> data/aligned.jsonl."""

import logging

from synthempathy.align import NEAREST, REQUIRED_FIELDS, align_pairs
from synthempathy.embeddings import Embedder
from synthempathy.errors import stage_main
from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.plots import write_plot

INPUT = "data/pairs.jsonl"
OUTPUT = "data/aligned.jsonl"
REJECTED = "data/rejected/align.jsonl"
METRICS = "metrics/align.json"
SIMILARITY_PLOT = "metrics/plots/similarity.csv"

log = logging.getLogger("align")


@stage_main
def main() -> None:
    params = load_params()
    pairs = read_jsonl(INPUT, required=REQUIRED_FIELDS)
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    result = align_pairs(pairs, embedder.encode, params.align, progress=True)
    write_jsonl_atomic(OUTPUT, result.kept)
    write_jsonl_atomic(REJECTED, result.rejected)
    write_json_atomic(METRICS, result.metrics)
    write_plot(SIMILARITY_PLOT, result.histogram, ("similarity", "scenario", "story", "response", NEAREST))
    log.info("kept %d of %d pairs; rejected: %s", len(result.kept), len(pairs), result.metrics["rejected"])


if __name__ == "__main__":
    main()
