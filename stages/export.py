"""Stage: release formats of the corpus: SFT JSONL, Parquet, dataset card."""

import json
import logging
from pathlib import Path

from synthempathy.errors import InputError, stage_main
from synthempathy.export import MetricsFile, Provenance, dataset_card, sft_records, write_parquet_atomic
from synthempathy.io import atomic_path, read_jsonl, write_jsonl_atomic
from synthempathy.llm.runtime import generation_model_name, model_weights
from synthempathy.params import load_params, params_sha256

log = logging.getLogger("export")


def read_metrics(path: str) -> MetricsFile:
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found; run the stage that writes it (dvc repro)")
    return MetricsFile(path, json.loads(Path(path).read_text(encoding="utf-8")))


@stage_main("corpus", "filter_metrics", "empathy_metrics", "scorer_metrics", "sft", "parquet", "card")
def main(paths) -> None:
    params = load_params()
    corpus = read_jsonl(paths.corpus, required=("id", "category", "explanation", "response", "er", "ip", "ex", "empathy"))
    metrics = [read_metrics(path) for path in (paths.filter_metrics, paths.empathy_metrics, paths.scorer_metrics)]
    card = dataset_card(corpus, *metrics, params, Provenance(generation_model_name(params), model_weights(params), params_sha256()))
    write_jsonl_atomic(paths.sft, sft_records(corpus))
    write_parquet_atomic(paths.parquet, corpus)
    with atomic_path(paths.card) as tmp:
        tmp.write_text(card, encoding="utf-8")
    log.info("exported %d pairs to %s, %s and %s", len(corpus), paths.sft, paths.parquet, paths.card)


if __name__ == "__main__":
    main()
