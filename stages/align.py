"""Stage: intent alignment + near-duplicate removal of the (explanation, response) pairs."""

import logging

from synthempathy.align import NEAREST, REQUIRED_FIELDS, align_pairs
from synthempathy.embeddings import Embedder
from synthempathy.errors import stage_main
from synthempathy.io import read_jsonl
from synthempathy.params import load_params
from synthempathy.plots import write_plot

log = logging.getLogger("align")


@stage_main("pairs", "aligned", "rejected", "metrics", "similarity_plot")
def main(paths) -> None:
    params = load_params()
    pairs = read_jsonl(paths.pairs, required=REQUIRED_FIELDS)
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    result, histogram = align_pairs(pairs, embedder.encode, params.align, progress=True)
    result.write(paths.aligned, paths.rejected, paths.metrics)
    write_plot(paths.similarity_plot, histogram, ("similarity", "scenario", "story", "response", NEAREST))
    log.info("kept %d of %d pairs; rejected: %s", len(result.kept), len(pairs), result.metrics()["rejected"])


if __name__ == "__main__":
    main()
