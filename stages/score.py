"""Stage: EPITOME empathy scores of each aligned pair (every record, in order, plus er/ip/ex
levels and expected values and their mean `empathy`)."""

import logging

from synthempathy.empathy.scorer import load_scorer, score_records, summarise
from synthempathy.errors import stage_main
from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic

log = logging.getLogger("score")


@stage_main("aligned", "scorer", "scored", "metrics")
def main(paths) -> None:
    records = read_jsonl(paths.aligned, required=("id", "explanation", "response"))
    scored = score_records(records, load_scorer(paths.scorer), source=paths.aligned)
    write_jsonl_atomic(paths.scored, scored)
    summary = summarise(scored)
    write_json_atomic(paths.metrics, summary)
    log.info("scored %d pairs: mean empathy %s", summary["n"], summary["empathy"]["mean"])


if __name__ == "__main__":
    main()
