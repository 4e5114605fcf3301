"""Stage: EPITOME empathy scores of each aligned pair, data/aligned.jsonl -> data/scored.jsonl
(every record, in order, plus er/ip/ex levels and expected values and their mean `empathy`)."""

import logging

from synthempathy.empathy.scorer import load_scorer, score_records, summarise
from synthempathy.errors import stage_main
from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic

INPUT = "data/aligned.jsonl"
SCORER = "models/empathy_scorer"
OUTPUT = "data/scored.jsonl"
METRICS = "metrics/empathy.json"

log = logging.getLogger("score")


@stage_main
def main() -> None:
    records = read_jsonl(INPUT, required=("id", "explanation", "response"))
    scored = score_records(records, load_scorer(SCORER), source=INPUT)
    write_jsonl_atomic(OUTPUT, scored)
    summary = summarise(scored)
    write_json_atomic(METRICS, summary)
    log.info("scored %d pairs: mean empathy %s", summary["n"], summary["empathy"]["mean"])


if __name__ == "__main__":
    main()
