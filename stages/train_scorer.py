"""Stage: EPITOME empathy scorer (ER, IP, EX) -> models/empathy_scorer/, with grouped CV against
baselines in metrics/empathy_scorer.json and the withheld seeker posts in data/heldout_situations.jsonl."""

import logging

from synthempathy.embeddings import Embedder
from synthempathy.empathy import load_epitome, sample_posts, save_scorer, scorer_manifest, split_heldout, train_scorer
from synthempathy.errors import stage_main
from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params

EPITOME_DIR = "data/external/epitome"
MODEL_DIR = "models/empathy_scorer"
HELDOUT = "data/heldout_situations.jsonl"
METRICS = "metrics/empathy_scorer.json"

log = logging.getLogger("train_scorer")


@stage_main
def main() -> None:
    params = load_params()
    p = params.train_scorer
    data = sample_posts(load_epitome(EPITOME_DIR), p.max_posts, params.seed)
    heldout, situations = split_heldout(data, p.heldout_posts, params.seed)
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    models, metrics = train_scorer(data, heldout, embedder, p.cv_folds, params.seed, p.text_C, p.embedding_C)
    save_scorer(models, scorer_manifest(models, params.embedding.model, params.embedding.batch_size, p.text_C, p.embedding_C), MODEL_DIR)
    write_jsonl_atomic(HELDOUT, situations)
    write_json_atomic(METRICS, metrics)
    for mechanism, systems in metrics["cv"].items():
        log.info("%s CV: %s", mechanism, "; ".join(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f}" for name, m in systems.items()))


if __name__ == "__main__":
    main()
