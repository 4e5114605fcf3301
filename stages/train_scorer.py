"""Stage: EPITOME empathy scorer (ER, IP, EX pair encoder), its figures on the held-out seeker
posts, and those posts written out as evaluation situations. Grouped CV against the baselines:
make scorer-cv (too slow for dvc repro)."""

import logging
import time

from synthempathy.empathy.data import MECHANISMS, STAGE_OPTIONS, load_epitome, pairs_table, sample_posts, split_heldout
from synthempathy.empathy.store import save_scorer, scorer_config
from synthempathy.empathy.train import train_scorer
from synthempathy.errors import stage_main
from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.paths import log_path

log = logging.getLogger("train_scorer")


@stage_main(*STAGE_OPTIONS, "scorer", "heldout", "metrics")
def main(paths) -> None:
    params = load_params()
    p = params.train_scorer
    started = time.perf_counter()
    files = {m: getattr(paths, option) for m, option in zip(MECHANISMS, STAGE_OPTIONS, strict=True)}
    table = sample_posts(pairs_table(load_epitome(files), files), p.max_posts, params.seed)
    heldout, situations = split_heldout(table, p.heldout_posts, params.seed)
    model, metrics = train_scorer(table, heldout, p, params.seed)
    save_scorer(model, scorer_config(p.encoder, metrics["train_pairs"]), paths.scorer)
    write_jsonl_atomic(paths.heldout, situations)
    write_json_atomic(paths.metrics, metrics)
    write_json_atomic(log_path("train_scorer"), {"train_s": round(time.perf_counter() - started, 1), "threads": p.encoder.threads})
    for mechanism, systems in metrics["heldout"].items():
        log.info("%s held out: %s", mechanism, "; ".join(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f}" for name, m in systems.items()))


if __name__ == "__main__":
    main()
