"""Inference-server engine throughput: the stages' generator (open_generator: cache, tqdm, SQLite)
with the local engine at batch 8 vs the openai engine at concurrency 1/4/8/16 against llama.cpp's
``llama-server -np 8`` (started as `make serve` starts it), on the same requests, with the same
llama.cpp threads, in one run on one machine. Goal: openai at concurrency 8 >= 0.9 x local.

Each run starts from an empty cache; the model is loaded (and the server warmed up by a
one-token request) before the timing. CPU time is this process's plus, for the openai engine,
the server's (psutil), so the per-CPU-second rates compare the same work. The client's own cost
per request is its process CPU time over the requests it sent, and, against a stub server that
answers every request at once with a canned completion, the most requests per second it drives.

    python -m benchmarks.bench_server [--threads 1] [--rounds 2]  # writes results/server.{md,json}
    python -m benchmarks.bench_server --smoke                     # seconds; prints only
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.bench_generation import Rate, benchmark_requests, warm_up
from benchmarks.common import busy, header, llm_arguments, table, write_result
from synthempathy.llm.cache import LLMCache
from synthempathy.llm.models import resolve_model_path
from synthempathy.llm.runtime import open_generator
from synthempathy.llm.serve import LLAMA_SERVER, free_port, launch, server_command
from synthempathy.llm.types import Request
from synthempathy.params import Params, load_params

HOST = "127.0.0.1"
GOAL = 0.9  # openai engine at concurrency == slots / local engine at batch == slots


@dataclass(frozen=True)
class Config:
    n_requests: int
    max_tokens: int
    slots: int  # llama-server -np, and the local engine's batch size
    concurrencies: tuple[int, ...]
    stub_requests: int


FULL = Config(n_requests=32, max_tokens=48, slots=8, concurrencies=(1, 4, 8, 16), stub_requests=400)
SMOKE = Config(n_requests=2, max_tokens=4, slots=2, concurrencies=(1, 2), stub_requests=10)


@dataclass(frozen=True)
class Run:
    rate: Rate
    requests: int
    client_cpu_seconds: float  # this process only: what the driver spends besides the server
    texts: tuple[str, ...]  # the completions, in request order

    @property
    def client_ms_per_request(self) -> float:
        return 1000 * self.client_cpu_seconds / self.requests


def with_engine(params: Params, **generation) -> Params:
    return params.model_copy(update={"generation": params.generation.model_copy(update=generation)})


def timed(params: Params, requests: Sequence[Request], cache_dir: Path, server: psutil.Process | None) -> Run:
    """open_generator(...).generate on an empty cache, after a one-token request that loads the
    model (local) or checks the endpoint and warms the server up (openai)."""
    generator = open_generator(params, LLMCache(cache_dir))
    try:
        generator.generate([dataclasses.replace(warm_up(requests[0]), seed=len(requests))], desc="load")
        server_cpu = _cpu(server)
        wall, cpu = time.perf_counter(), time.process_time()
        completions = generator.generate(requests, desc=f"{params.generation.engine}")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_cpu = _cpu(server) - server_cpu
    finally:
        generator.close()
    at_length = sum(c.finish_reason == "length" for c in completions) / len(completions)
    rate = Rate(sum(c.completion_tokens for c in completions), wall, cpu + server_cpu, at_length)
    return Run(rate, len(requests), cpu, tuple(c.text for c in completions))


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def measure(params: Params, config: Config, rounds: int, work: Path) -> Iterator[dict[str, list[Run]]]:
    """After each round, every run so far of each setting; local and server runs alternate."""
    requests = benchmark_requests(params, config.n_requests, config.max_tokens)
    port = free_port()
    url = f"http://{HOST}:{port}/v1"
    command = server_command(LLAMA_SERVER, resolve_model_path(params.model.path).resolve(), params, HOST, port, config.slots)
    with (work / "llama-server.log").open("wb") as log:
        server = launch(command, HOST, port, log)
    runs: dict[str, list[Run]] = {}
    try:
        for round_ in range(rounds):
            local = with_engine(params, engine="local", batch_size=config.slots)
            runs.setdefault(f"local {config.slots}", []).append(timed(local, requests, work / f"local-{round_}", None))
            for c in config.concurrencies:
                served = with_engine(params, engine="openai", endpoints=(url,), concurrency=c, max_retries=0)
                runs.setdefault(f"openai {c}", []).append(timed(served, requests, work / f"openai-{c}-{round_}", psutil.Process(server.pid)))
            yield runs
    finally:
        server.terminate()
        server.wait()


def client_ceiling(params: Params, config: Config, work: Path) -> dict[int, float]:
    """Requests per second the openai engine completes against the stub, per concurrency."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.stub_server", str(port), params.generation.served_model, str(config.max_tokens)]
    with (work / "stub.log").open("wb") as log:
        stub = launch(command, HOST, port, log)
    requests = benchmark_requests(params, config.stub_requests, config.max_tokens)
    rates = {}
    try:
        for c in (1, max(config.concurrencies)):
            served = with_engine(params, engine="openai", endpoints=(f"http://{HOST}:{port}/v1",), concurrency=c, max_retries=0)
            run = timed(served, requests, work / f"stub-{c}", None)
            rates[c] = run.requests / run.rate.seconds
    finally:
        stub.terminate()
        stub.wait()
    return rates


def fastest(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.rate.per_s)


def same_text(runs: dict[str, list[Run]], name: str) -> str:
    """How many completions of ``name``'s latest run have the text of the first run at
    concurrency 1 (the same requests, seeds and server): the server's reproducibility."""
    reference = runs["openai 1"][0]
    others = [run for run in runs[name] if run is not reference]
    if not others:
        return "-"
    return f"{sum(a == b for a, b in zip(others[-1].texts, reference.texts, strict=True))}/{reference.requests}"


def report(runs: dict[str, list[Run]], config: Config, ceiling: dict[int, float]) -> list[tuple[str, ...]]:
    """Table rows; also printed, one line per setting."""
    local = fastest(runs[f"local {config.slots}"])
    rows = []
    for name in runs:
        run = fastest(runs[name])
        ratio = run.rate.per_s / local.rate.per_s
        c = int(name.split()[1])
        setting = f"local engine, batch {c}" if name.startswith("local") else f"openai engine, concurrency {c}"
        goal = f" (goal >= {GOAL})" if name == f"openai {config.slots}" else ""
        same = same_text(runs, name)
        rows.append(
            (
                setting,
                f"{run.rate.per_s:.1f} ({run.rate.per_cpu_s:.1f})",
                f"{ratio:.3f}{goal}",
                f"{run.client_ms_per_request:.1f}",
                same,
                f"{run.rate.at_length:.0%}",
            )
        )
        print(
            f"server {setting}: {run.rate.per_s:.1f} tok/s, ratio to local {ratio:.3f}{goal}; client CPU {run.client_ms_per_request:.1f} ms/request; same text as concurrency 1: {same}"
        )
    print("client against an instant stub server: " + ", ".join(f"{rate:.0f} requests/s at concurrency {c}" for c, rate in ceiling.items()))
    return rows


def markdown(rows: list[tuple[str, ...]], config: Config, params: Params, rounds: int, ceiling: dict[int, float], busy_before: str) -> str:
    head = "| engine | tokens/s (per CPU-second) | × local engine | client CPU ms per request | same text as the first run at concurrency 1 | ended at length |"
    return (
        header("Inference-server engine benchmark", busy_before)
        + f"- model: embedded SmolLM2-135M-Instruct Q4_1, n_threads={params.model.n_threads} for the local engine and for "
        f"`llama-server -np {config.slots}` (`--threads`, `--threads-batch`), {params.model.n_ctx} tokens of context per slot\n"
        f"- requests: {config.n_requests} brainstorm prompts (bench_generation's), max_tokens={config.max_tokens}, "
        f"brainstorm sampling, one seed each; best of {rounds} alternating rounds, each on an empty cache\n\n"
        "Rates are completion tokens per second of wall clock and, in brackets, per CPU-second of the client "
        "process plus (openai) the server process. The client CPU column is the stage process's CPU time per "
        "request: the openai client, asyncio, JSON, the SQLite cache and tqdm (for the local engine it includes "
        "the decoding itself). The same-text column compares each setting's last run with the first run at "
        "concurrency 1 (for concurrency 1: its second run), request by request: same prompt, same seed, same "
        "server; the local engine is a different program (llama-cpp-python's sampler, its own batching).\n\n"
        f"{table(head, rows)}\n\n"
        "The client's own ceiling, against a stub server in another process that answers every request at once "
        f"with a canned {config.max_tokens}-token completion ({config.stub_requests} requests, cache and tqdm included): "
        + ", ".join(f"{rate:,.0f} requests/s at concurrency {c}" for c, rate in ceiling.items())
        + ".\n"
    )


def main() -> None:
    args = llm_arguments(__doc__, "llama.cpp threads of the local engine and of llama-server (default 1)")
    config, rounds = (SMOKE, 1) if args.smoke else (FULL, args.rounds)
    if not LLAMA_SERVER.is_file():
        raise SystemExit(f"{LLAMA_SERVER} not built: run make llama-tools")
    params = load_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"n_threads": args.threads})})
    busy_before = busy()
    with tempfile.TemporaryDirectory() as work:
        ceiling = client_ceiling(params, config, Path(work))
        for done, runs in enumerate(measure(params, config, rounds, Path(work)), start=1):
            print(f"after round {done} of {rounds}:")
            rows = report(runs, config, ceiling)
            if args.smoke:
                continue
            write_result("server.md", markdown(rows, config, params, done, ceiling, busy_before))
            summary = {
                "n_threads": params.model.n_threads,
                "slots": config.slots,
                "max_tokens": config.max_tokens,
                "rounds": done,
                "tokens_per_second": {name: round(fastest(found).rate.per_s, 2) for name, found in runs.items()},
                "tokens_per_cpu_second": {name: round(fastest(found).rate.per_cpu_s, 2) for name, found in runs.items()},
                "client_cpu_ms_per_request": {name: round(fastest(found).client_ms_per_request, 2) for name, found in runs.items()},
                "same_text_as_concurrency_1": {name: same_text(runs, name) for name in runs},
                "stub_requests_per_second": {str(c): round(rate, 1) for c, rate in ceiling.items()},
            }
            write_result("server.json", json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
