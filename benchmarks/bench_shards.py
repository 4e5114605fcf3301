"""The shard size trade-off (``generation.shard_batches``): throughput against what a kill costs.

At ``generation.batch_size`` > 1 the requests are decoded in shards (synthempathy/llm/shards.py),
each from a clear KV cache; a killed run decodes its open shard again, whole, on resume (its
finished members too, so that the misses meet the same batch-mates). Small shards bound that
redo; large ones waste less in their tails, where slots idle while the last sequences finish.

Each setting runs the stages' generator (open_generator: cache, tqdm, SQLite) on the same
brainstorm requests from an empty cache, in one run; ratios are against the shipped default.
The redo after a kill at a random moment is computed from the plan's cuts of these request ids:
a kill lands in a shard with probability proportional to its size and finds it half done, so the
expected redo is E[S^2] / (2 E[S]) requests (pure arithmetic, no timing).

    python -m benchmarks.bench_shards [--threads 2] [--rounds 1]  # writes results/shards.md
    python -m benchmarks.bench_shards --smoke                     # seconds; prints only
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_generation import Rate, benchmark_requests, best, timed_generation
from benchmarks.common import busy, header, llm_arguments, table, write_result
from synthempathy.llm.shards import ShardPlan
from synthempathy.llm.types import Request
from synthempathy.params import Params, load_params


@dataclass(frozen=True)
class Config:
    n_requests: int
    max_tokens: int
    batch_size: int
    shard_batches: tuple[int, ...]


FULL = Config(n_requests=256, max_tokens=48, batch_size=8, shard_batches=(2, 4, 8, 16, 32))
SMOKE = Config(n_requests=6, max_tokens=4, batch_size=2, shard_batches=(2, 4))


def expected_redo(sizes: Sequence[int]) -> float:
    """Requests decoded again after a kill at a uniformly random moment of the run."""
    return sum(s * s for s in sizes) / (2 * sum(sizes))


def run(params: Params, batch_size: int, shard_batches: int, requests: Sequence[Request], cache_dir: Path) -> Rate:
    generation = params.generation.model_copy(update={"batch_size": batch_size, "shard_batches": shard_batches, "engine": "local"})
    return timed_generation(params.model_copy(update={"generation": generation}), requests, cache_dir, f"shard_batches {shard_batches}")


def main() -> None:
    args = llm_arguments(__doc__, "llama.cpp threads")
    config = SMOKE if args.smoke else FULL
    params = load_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"n_threads": args.threads})})
    default = params.generation.shard_batches
    settings = sorted({*config.shard_batches, default})
    requests = benchmark_requests(params, config.n_requests, config.max_tokens)
    ids = [r.id for r in requests]
    busy_before = busy()
    rates: dict[int, list[Rate]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1 if args.smoke else args.rounds):
            for s in settings:  # interleaved, so a change of load hits every setting
                rates[s].append(run(params, config.batch_size, s, requests, Path(tmp) / f"{s}-{round_}"))
    rows = []
    base = best(rates[default])
    for s in settings:
        rate = best(rates[s])
        sizes = [len(shard) for shard in ShardPlan.for_batch(config.batch_size, s).split(ids)]
        rows.append(
            [
                f"{s}{' (default)' if s == default else ''}",
                f"{min(sizes)}-{max(sizes)} (mean {sum(sizes) / len(sizes):.0f})",
                f"{rate.per_s:.1f}",
                f"{rate.per_s / base.per_s:.3f}",
                f"{expected_redo(sizes):.0f}",
            ]
        )
    text = table("| shard_batches | shard sizes here (requests) | tokens/s | / default | expected redo after a kill (requests) |", rows)
    print(text)
    if not args.smoke:
        note = (
            f"\n{config.n_requests} brainstorm requests of the embedded model, max_tokens {config.max_tokens}, "
            f"generation.batch_size {config.batch_size}, {args.threads} llama.cpp thread(s), empty cache; best of "
            f"{args.rounds} interleaved round(s). Expected redo: E[S^2] / (2 E[S]) over these shards.\n"
        )
        write_result("shards.md", header("Shard size: throughput vs resume cost", busy_before) + "\n" + text + "\n" + note)


if __name__ == "__main__":
    main()
