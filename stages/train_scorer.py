"""Stage: EPITOME empathy scorer (ER, IP, EX pair encoder) -> models/empathy_scorer/, its held-out
figures in metrics/empathy_scorer_heldout.json and the withheld seeker posts in
data/heldout_situations.jsonl. Grouped CV against the baselines: make scorer-cv."""

import logging
import time

from synthempathy.empathy.data import load_epitome, pairs_table, sample_posts, split_heldout
from synthempathy.empathy.store import save_scorer, scorer_config
from synthempathy.empathy.train import train_scorer
from synthempathy.errors import stage_main
from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params

EPITOME_DIR = "data/external/epitome"
MODEL_DIR = "models/empathy_scorer"
HELDOUT = "data/heldout_situations.jsonl"
METRICS = "metrics/empathy_scorer_heldout.json"
TIMINGS = "logs/train_scorer.json"

log = logging.getLogger("train_scorer")


@stage_main
def main() -> None:
    params = load_params()
    p = params.train_scorer
    started = time.perf_counter()
    table = sample_posts(pairs_table(load_epitome(EPITOME_DIR), EPITOME_DIR), p.max_posts, params.seed)
    heldout, situations = split_heldout(table, p.heldout_posts, params.seed)
    model, metrics = train_scorer(table, heldout, p, params.seed)
    save_scorer(model, scorer_config(p.encoder, metrics["train_pairs"]), MODEL_DIR)
    write_jsonl_atomic(HELDOUT, situations)
    write_json_atomic(METRICS, metrics)
    write_json_atomic(TIMINGS, {"train_s": round(time.perf_counter() - started, 1), "threads": p.encoder.threads})
    for mechanism, systems in metrics["heldout"].items():
        log.info("%s held out: %s", mechanism, "; ".join(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f}" for name, m in systems.items()))


if __name__ == "__main__":
    main()
