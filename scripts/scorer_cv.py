"""Grouped k-fold cross-validation of the EPITOME scorer against the baselines (`make scorer-cv`).

    python scripts/scorer_cv.py [--max-posts N] [--folds K] [--out metrics/empathy_scorer.json]

On the same folds (grouped by seeker post, stratified by the three levels) it fits the pair
encoder of params.yaml:train_scorer.encoder, the previous scorer (`baseline`), its TF-IDF half
(`tfidf_lr`) and the majority class, and writes per mechanism and system the mean and std over
folds of accuracy, macro-F1 and the expected level's mean absolute error, plus a reliability
table of the expected level, to the JSON file and a Markdown table beside it (.md). The held-out
posts of train_scorer are left out, as in training. Too slow for `dvc repro` (k fits of the
encoder), so its outputs are committed files, not DVC outputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: import the package from this checkout

from synthempathy.embeddings import Embedder  # noqa: E402
from synthempathy.empathy.cv import cross_validate, grouped_folds, markdown_report  # noqa: E402
from synthempathy.empathy.data import load_epitome, pairs_table, sample_posts, split_heldout, stage_files  # noqa: E402
from synthempathy.empathy.train import systems_predictor  # noqa: E402
from synthempathy.io import atomic_path, write_json_atomic  # noqa: E402
from synthempathy.params import load_params  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-posts", type=int, default=None, help="seeded subset of seeker posts (default: train_scorer.max_posts)")
    parser.add_argument("--folds", type=int, default=None, help="default: train_scorer.cv_folds")
    parser.add_argument("--out", type=Path, default=Path("metrics/empathy_scorer.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = load_params()
    p = params.train_scorer
    started = time.perf_counter()
    files = stage_files()  # the annotation files of dvc.yaml's train_scorer stage
    table = sample_posts(pairs_table(load_epitome(files), files), args.max_posts or p.max_posts, params.seed)
    heldout, _ = split_heldout(table, p.heldout_posts, params.seed)
    table = table[~table["sp_id"].isin(set(heldout))].reset_index(drop=True)
    folds = grouped_folds(table, args.folds or p.cv_folds, params.seed)
    predict = systems_predictor(table, p, params.seed, Embedder(params.embedding.model, params.embedding.batch_size))
    result = {
        "pairs": len(table),
        "posts": int(table["sp_id"].nunique()),
        "folds": len(folds),
        "params": p.model_dump(),
        **cross_validate(table, folds, predict),
    }
    write_json_atomic(args.out, result)
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown_report(result), encoding="utf-8")
    print(markdown_report(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
