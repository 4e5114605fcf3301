"""Benchmark of the EPITOME scorer: pairs scored per second by the pair encoder (the shipped
scorer) and by the previous scorer (MiniLM sentence embeddings + two logistic regressions) on
the same pairs, in one run, each from a cold start (no embedding cache).

Two sets of real EPITOME pairs: as annotated (posts ~40, responses ~36 tokens at the median),
and at corpus length (three posts and three responses joined: ~100-150 words each, like the
corpus's explanations and responses; paper scale is 105k pairs, goal >= 200 pairs/s = <= 10 min).
Weights do not change the work, so the pair encoder is scored with its initial weights, and the
previous scorer is fitted on a few hundred pairs: no trained scorer is needed.

    python -m benchmarks.bench_scorer [--threads N] [--pairs 512] [--rounds 2]
    python -m benchmarks.bench_scorer --smoke     # seconds; prints only
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import busy, header, table, write_result
from synthempathy.embeddings import Embedder
from synthempathy.empathy.baseline import fit_baselines
from synthempathy.empathy.data import MECHANISMS, load_epitome, pairs_table, stage_files
from synthempathy.empathy.encoder import FrozenEncoder, PairModel
from synthempathy.empathy.features import frame_features
from synthempathy.empathy.scorer import EmpathyScorer
from synthempathy.params import load_params

GOAL = 200.0  # pairs/s on 2 cores


def epitome_pairs():
    files = stage_files()
    return pairs_table(load_epitome(files), files)


def pair_sets(n: int) -> dict[str, list[tuple[str, str]]]:
    """``n`` EPITOME pairs as annotated and ``n`` corpus-length pairs, from the end of the file
    (the previous scorer is fitted on its start)."""
    table = epitome_pairs()
    tail = table.iloc[len(table) - 3 * n :]
    short = list(zip(tail["seeker"][-n:], tail["response"][-n:], strict=True))
    seekers, responses = list(tail["seeker"]), list(tail["response"])
    long = [(" ".join(seekers[i : i + 3]), " ".join(responses[i : i + 3])) for i in range(0, 3 * n, 3)]
    return {"EPITOME length": short, "corpus length": long}


def previous_scorer(fit_pairs: int, embedder: Embedder):
    """Fitted per-mechanism baselines and a function scoring pairs as the previous scorer did."""
    params = load_params().train_scorer
    table = epitome_pairs().iloc[:fit_pairs]
    X = frame_features(table, embedder)
    models = {m: fit_baselines(X, table[m].to_numpy(), params.baseline)["baseline"] for m in MECHANISMS}

    def score(pairs: list[tuple[str, str]], cold: Embedder) -> None:
        import pandas as pd

        frame = pd.DataFrame({"seeker": [s for s, _ in pairs], "response": [r for _, r in pairs]})
        features = frame_features(frame, cold)
        for model in models.values():
            model.predict_proba(features) @ np.asarray(model.classes_)

    return score


def measure(pairs: list[tuple[str, str]], rounds: int, encoder: EmpathyScorer, previous, threads: int, fit_embedder: Embedder) -> dict[str, float]:
    """Best-of-rounds pairs/s of each scorer, alternating, each round with an empty embedding cache."""
    best = {"pair encoder": float("inf"), "previous scorer": float("inf")}
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            start = time.perf_counter()
            encoder.score(pairs)
            best["pair encoder"] = min(best["pair encoder"], time.perf_counter() - start)
            cold = Embedder("default", batch_size=64, cache_dir=Path(tmp) / f"round{r}")
            cold._model = fit_embedder._load()  # the loaded model, an empty cache
            start = time.perf_counter()
            previous(pairs, cold)
            best["previous scorer"] = min(best["previous scorer"], time.perf_counter() - start)
    return {name: len(pairs) / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no results file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of both scorers (default: train_scorer.encoder.threads)")
    parser.add_argument("--pairs", type=int, default=512, help="pairs per set")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    args = parser.parse_args()
    n, rounds, fit_pairs = (16, 1, 120) if args.smoke else (args.pairs, args.rounds, 600)
    busy_before = busy() if not args.smoke else ""
    params = load_params().train_scorer.encoder
    params = params.model_copy(update={"threads": args.threads or params.threads})
    torch.manual_seed(0)
    frozen = FrozenEncoder(params.tuned_layers, params.max_tokens)
    encoder = EmpathyScorer(PairModel(frozen.top, params).eval(), frozen, params.threads)
    fit_embedder = Embedder("default", batch_size=64)  # fitting is not timed: the shared cache serves it
    previous = previous_scorer(fit_pairs, fit_embedder)
    encoder.score(pair_sets(4)["EPITOME length"])  # warm up
    rows = []
    for name, pairs in pair_sets(n).items():
        rate = measure(pairs, rounds, encoder, previous, params.threads, fit_embedder)
        ratio = rate["pair encoder"] / rate["previous scorer"]
        print(
            f"scorer {name}: {len(pairs)} pairs, pair encoder {rate['pair encoder']:.1f}/s, previous scorer {rate['previous scorer']:.1f}/s, ratio {ratio:.3f} (goal >= {GOAL:.0f} pairs/s)"
        )
        rows.append(
            [
                name,
                str(len(pairs)),
                f"{rate['pair encoder']:.1f}",
                f"{rate['previous scorer']:.1f}",
                f"{ratio:.3f}",
                f"{105_578 / rate['pair encoder'] / 60:.0f}",
            ]
        )
    if args.smoke:
        return
    text = header("EPITOME scorer speed", busy_before) + (
        f"- torch threads: {params.threads}; best of {rounds} alternating rounds; each round starts with an empty embedding cache\n\n"
        + table("| pairs | n | pair encoder, pairs/s | previous scorer, pairs/s | ratio | 105,578 pairs (paper), min |", rows)
        + f"\n\nGoal: >= {GOAL:.0f} pairs/s on 2 cores. Absolute rates depend on the load of the shared machine (above); the ratio, measured in alternating rounds, much less.\n"
    )
    write_result("scorer.md", text)


if __name__ == "__main__":
    main()
