"""Ray engine overhead and scale-out: the stages' generator (open_generator: cache, tqdm, SQLite)
with the local engine vs the Ray engine with 1 and 2 workers, on the same requests, in one run.

Each run starts from an empty cache in a temp dir. Ray is started once (in-process, as
``ray_address: local`` does) and the workers' model loading happens before the timing, like
the local engine's: the rates compare generation only. Ratios against the local engine at the
same threads per worker: Ray with 1 worker shows the engine's overhead (goal >= 0.90), with 2
the scale-out; the local engine with twice the threads uses the same cores as 2 workers.

    python -m benchmarks.bench_ray [--threads 1] [--rounds 2]  # writes results/ray.{md,json}
    python -m benchmarks.bench_ray --smoke                     # seconds; prints only
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_generation import Rate, benchmark_requests, timed_generation, warm_up
from benchmarks.common import busy, header, llm_arguments, table, write_result
from synthempathy.llm.types import Request
from synthempathy.params import Params, load_params

OVERHEAD_GOAL = 0.90  # Ray with 1 worker / local engine, same threads


@dataclass(frozen=True)
class Config:
    n_requests: int
    max_tokens: int
    batch_sizes: tuple[int, ...]


FULL = Config(n_requests=32, max_tokens=48, batch_sizes=(1, 4))
SMOKE = Config(n_requests=2, max_tokens=4, batch_sizes=(1,))


@dataclass(frozen=True)
class Setup:
    """One way to run the generation: engine, workers, llama.cpp threads per worker."""

    engine: str
    workers: int
    threads: int

    @property
    def name(self) -> str:
        return f"local {self.threads}t" if self.engine == "local" else f"ray x{self.workers} {self.threads}t"


def setups(threads: int, wide: bool = True) -> list[Setup]:
    """Local, Ray with 1 and 2 workers, at ``threads`` each; ``wide``: also local at twice the
    threads (left out of the smoke run: on a busy 2-core box two spinning threads crawl)."""
    return [Setup("local", 1, threads), Setup("ray", 1, threads), Setup("ray", 2, threads)] + ([Setup("local", 1, 2 * threads)] if wide else [])


def run(params: Params, setup: Setup, batch_size: int, requests: Sequence[Request], cache_dir: Path) -> Rate:
    """Empty cache; every worker loads and decodes a one-token request before the timing."""
    generation = params.generation.model_copy(update={"batch_size": batch_size, "engine": setup.engine, "workers": setup.workers, "ray_address": "local"})
    model = params.model.model_copy(update={"n_threads": setup.threads})
    warm = [dataclasses.replace(warm_up(requests[0]), id=f"warm-up-{i}", seed=i) for i in range(setup.workers)]
    return timed_generation(params.model_copy(update={"generation": generation, "model": model}), requests, cache_dir, f"{setup.name} batch {batch_size}", warm)


def measure(params: Params, config: Config, rounds: int, threads: int, wide: bool) -> Iterator[dict[str, Rate]]:
    """After each round, the fastest rate so far of every (setup, batch size), by wall clock."""
    requests = benchmark_requests(params, config.n_requests, config.max_tokens)
    runs: dict[str, list[Rate]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):  # alternate setups so load changes hit all of them
            for b in config.batch_sizes:
                for setup in setups(threads, wide):
                    rate = run(params, setup, b, requests, Path(tmp) / f"{setup.name}-b{b}-{round_}".replace(" ", "_"))
                    runs.setdefault(f"{setup.name} b{b}", []).append(rate)
            yield {name: max(rates, key=lambda r: r.per_s) for name, rates in runs.items()}


def report(rates: dict[str, Rate], config: Config, threads: int) -> list[tuple[str, ...]]:
    """Table rows; also printed, one line per batch size."""
    rows = []
    local, one, two, wide = (s.name for s in setups(threads))
    for b in config.batch_sizes:
        rate = {name: rates[f"{name} b{b}"].per_s if f"{name} b{b}" in rates else None for name in (local, one, two, wide)}
        wide_text = f"{rate[wide]:.1f}" if rate[wide] else "-"
        same_cores = f"{rate[two] / rate[wide]:.2f}" if rate[wide] else "-"
        overhead, scale = rate[one] / rate[local], rate[two] / rate[local]
        rows.append(
            (
                str(b),
                f"{rate[local]:.1f}",
                f"{rate[one]:.1f}",
                f"{rate[two]:.1f}",
                wide_text,
                f"{overhead:.3f}, goal >= {OVERHEAD_GOAL}",
                f"{scale:.2f}",
                same_cores,
            )
        )
        print(
            f"ray batch {b}: local {rate[local]:.1f} tok/s; ray x1 {rate[one]:.1f} tok/s, ratio {overhead:.3f} (goal >= {OVERHEAD_GOAL}); "
            f"ray x2 {rate[two]:.1f} tok/s, ratio {scale:.2f}; local with {2 * threads} threads {wide_text} tok/s, ray x2 / it {same_cores}"
        )
    return rows


def markdown(rows: list[tuple[str, ...]], config: Config, params: Params, threads: int, rounds: int, busy_before: str) -> str:
    head = (
        f"| batch | local, {threads} thread(s) | ray, 1 worker | ray, 2 workers | local, {2 * threads} threads "
        "| ray 1 worker / local (overhead) | ray 2 workers / local | ray 2 workers / local with the same cores |"
    )
    return (
        header("Ray engine benchmark", busy_before)
        + f"- model: embedded SmolLM2-135M-Instruct Q4_1, {threads} llama.cpp thread(s) per worker, n_ctx={params.model.n_ctx}, "
        f"brainstorm prompt and sampling, max_tokens={config.max_tokens}; best of {rounds} alternating rounds\n"
        f"- requests: {config.n_requests} per run, empty cache each; Ray in-process on this machine (ray_address: local)\n\n"
        "Rates are completion tokens per second of wall clock, from the first request sent to the last completion "
        "cached; model loading and Ray's start are outside the timing for every engine.\n\n"
        f"{table(head, rows)}\n"
    )


def main() -> None:
    args = llm_arguments(__doc__, "llama.cpp threads per worker (default 1)")
    if importlib.util.find_spec("ray") is None:
        print("ray: not installed (make setup-ray); skipped")
        return
    import ray

    from synthempathy.llm.ray_engine import connect

    config, rounds = (SMOKE, 1) if args.smoke else (FULL, args.rounds)
    params = load_params()
    busy_before = busy()
    connect("local", 2 * args.threads)  # once: every Ray run joins it, as a stage joins a cluster
    try:
        for done, rates in enumerate(measure(params, config, rounds, args.threads, wide=not args.smoke), start=1):
            print(f"after round {done} of {rounds}:")
            rows = report(rates, config, args.threads)
            if args.smoke:
                continue
            write_result("ray.md", markdown(rows, config, params, args.threads, done, busy_before))
            summary = {
                "n_threads": args.threads,
                "max_tokens": config.max_tokens,
                "n_requests": config.n_requests,
                "rounds": done,
                "tokens_per_second": {name: round(rate.per_s, 2) for name, rate in rates.items()},
            }
            write_result("ray.json", json.dumps(summary, indent=2) + "\n")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
