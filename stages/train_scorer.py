"""Stage: EPITOME empathy scorer (ER, IP, EX), with grouped CV against baselines in its metrics
and the withheld seeker posts written out as evaluation situations."""

import logging

from synthempathy.embeddings import Embedder
from synthempathy.empathy import load_epitome, sample_posts, save_scorer, scorer_manifest, split_heldout, train_scorer
from synthempathy.errors import stage_main
from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params

log = logging.getLogger("train_scorer")


@stage_main("emotional_reactions", "interpretations", "explorations", "scorer", "heldout", "metrics")
def main(paths) -> None:
    params = load_params()
    p = params.train_scorer
    epitome = load_epitome({"er": paths.emotional_reactions, "ip": paths.interpretations, "ex": paths.explorations})
    data = sample_posts(epitome, p.max_posts, params.seed)
    heldout, situations = split_heldout(data, p.heldout_posts, params.seed)
    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    models, metrics = train_scorer(data, heldout, embedder, p.cv_folds, params.seed, p.text_C, p.embedding_C)
    save_scorer(models, scorer_manifest(models, params.embedding.model, params.embedding.batch_size, p.text_C, p.embedding_C), paths.scorer)
    write_jsonl_atomic(paths.heldout, situations)
    write_json_atomic(paths.metrics, metrics)
    for mechanism, systems in metrics["cv"].items():
        log.info("%s CV: %s", mechanism, "; ".join(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f}" for name, m in systems.items()))


if __name__ == "__main__":
    main()
