"""Stage: release formats of data/corpus/synthempathy.jsonl: SFT JSONL, Parquet, dataset card."""

import json
import logging
from pathlib import Path

from synthempathy.errors import InputError, stage_main
from synthempathy.export import dataset_card, sft_records, write_parquet_atomic
from synthempathy.io import atomic_path, read_jsonl, write_jsonl_atomic
from synthempathy.llm.models import resolve_model_path
from synthempathy.params import load_params

CORPUS = "data/corpus/synthempathy.jsonl"
SFT = "data/corpus/sft.jsonl"
PARQUET = "data/corpus/synthempathy.parquet"
CARD = "data/corpus/README.md"
METRICS = ("metrics/filter.json", "metrics/empathy.json", "metrics/empathy_scorer_heldout.json")

log = logging.getLogger("export")


def read_metrics(path: str) -> dict:
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found; run the stage that writes it (dvc repro)")
    return json.loads(Path(path).read_text(encoding="utf-8"))


@stage_main
def main() -> None:
    params = load_params()
    corpus = read_jsonl(CORPUS, required=("id", "category", "explanation", "response", "er", "ip", "ex", "empathy"))
    card = dataset_card(corpus, {path: read_metrics(path) for path in METRICS}, params, resolve_model_path(params.model.path).name)
    write_jsonl_atomic(SFT, sft_records(corpus))
    write_parquet_atomic(PARQUET, corpus)
    with atomic_path(CARD) as tmp:
        tmp.write_text(card, encoding="utf-8")
    log.info("exported %d pairs to %s, %s and %s", len(corpus), SFT, PARQUET, CARD)


if __name__ == "__main__":
    main()
