"""Generation throughput: the pipeline's generator against bare llama.cpp, in one run.

(1) Batch 1: the pipeline (CachedGenerator + LlamaBackend, empty cache, tqdm and SQLite
    included) vs bare ``Llama.create_chat_completion`` on the same prompts (goal >= 0.95).
(2) Batch 4, 8, 16: the pipeline (BatchedLlamaBackend) vs that bare single stream, and vs the
    ceiling: bare ``llama_decode`` on batches of the same size doing the same token work (the
    pipeline's shards, B sequences at a time, each wave's prompts prefilled in one call, then
    one token per sequence per step; no sampling, no Python bookkeeping), goal >= 0.85. The
    pure decode rate after a short prompt (no prompt work at all) is reported beside it.

Stories are capped at a fixed ``max_tokens`` that nearly all of them reach (the share ending
at "length" is reported), so every run decodes about the same number of tokens.

    python -m benchmarks.bench_generation [--threads 1] [--rounds 2]  # writes results/generation.{md,json}
    python -m benchmarks.bench_generation --smoke                     # seconds; prints only
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from benchmarks.common import busy, header, llm_arguments, table, write_result
from synthempathy.generation import build_requests, expand_scenarios
from synthempathy.llm.batched import completion_arguments
from synthempathy.llm.cache import LLMCache
from synthempathy.llm.llama import chat_arguments, load_llama
from synthempathy.llm.llama_cpp_internals import open_batch_context
from synthempathy.llm.models import resolve_model_path
from synthempathy.llm.runtime import open_generator
from synthempathy.llm.shards import ShardPlan
from synthempathy.llm.types import Request
from synthempathy.params import Params, load_params
from synthempathy.prompts import load_prompt

# Stressors in the style of SAD's sentences; fixed here so the benchmark needs no pipeline output.
SCENARIOS = [
    "I have three exams next week and I have not started studying",
    "my landlord is raising the rent again and I can barely pay it now",
    "my mother was diagnosed with cancer last month",
    "my boss keeps giving me more work than I can finish",
    "I had a huge fight with my best friend and we are not talking",
    "my car broke down and I cannot afford the repair",
    "I cannot sleep because I keep worrying about money",
    "my dog is very sick and the vet bills keep growing",
    "I moved to a new city and I do not know anyone here",
    "my partner and I argue every day about small things",
    "I was laid off and I have a family to feed",
    "I have to give a speech at my sister's wedding and I am terrified",
]


@dataclass(frozen=True)
class Config:
    n_single: int  # requests for the single-stream comparison
    n_batched: int  # requests for each batch size
    max_tokens: int
    batch_sizes: tuple[int, ...]


FULL = Config(n_single=8, n_batched=32, max_tokens=48, batch_sizes=(4, 8, 16))
SMOKE = Config(n_single=1, n_batched=2, max_tokens=4, batch_sizes=(2,))


@dataclass(frozen=True)
class Rate:
    tokens: int
    seconds: float  # wall clock
    cpu_seconds: float  # all threads of this process: what other jobs on the box barely change
    at_length: float = 1.0  # share of completions that ended at max_tokens

    @property
    def per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def per_cpu_s(self) -> float:
        return self.tokens / self.cpu_seconds


class Clock:
    """Adds up wall and process CPU time over the regions it times."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    @contextmanager
    def timing(self):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu


def benchmark_requests(params: Params, n: int, max_tokens: int) -> list[Request]:
    scenarios = [{"id": f"sad-{i}", "text": t, "category": "bench", "severity": 5.0} for i, t in enumerate(SCENARIOS)]
    stubs = expand_scenarios(scenarios, n_stories=-(-n // len(scenarios)))[:n]
    sampling = params.brainstorm.model_copy(update={"max_tokens": max_tokens})
    return build_requests(stubs, load_prompt("brainstorm"), sampling, params.seed, "brainstorm")


def warm_up(request: Request) -> Request:
    """A one-token request: the first call of a process pays one-off costs no rate should carry."""
    return Request("warm-up", request.messages, 0.9, 0.95, 1, 1.0, 0)


def bare_single_stream(llm: llama_cpp.Llama, requests: Sequence[Request]) -> Rate:
    tokens, at_length, clock = 0, 0, Clock()
    with clock.timing():
        for request in requests:
            llm.reset()
            out = llm.create_chat_completion(**chat_arguments(request))
            tokens += out["usage"]["completion_tokens"]
            at_length += out["choices"][0]["finish_reason"] == "length"
    return Rate(tokens, clock.wall, clock.cpu, at_length / len(requests))


def pipeline(params: Params, batch_size: int, requests: Sequence[Request], cache_dir: Path) -> Rate:
    """The stages' own path (open_generator: backend, SQLite cache, tqdm), empty cache."""
    params = params.model_copy(update={"generation": params.generation.model_copy(update={"batch_size": batch_size, "engine": "local"})})
    return timed_generation(params, requests, cache_dir, f"pipeline batch {batch_size}")


def timed_generation(params: Params, requests: Sequence[Request], cache_dir: Path, desc: str, warm: Sequence[Request] | None = None) -> Rate:
    """open_generator(params).generate(requests) on the empty cache ``cache_dir``, timed. The
    ``warm`` requests (default: one one-token request) load the model outside the timing."""
    generator = open_generator(params, LLMCache(cache_dir))
    try:
        generator.generate(warm or [warm_up(requests[0])], desc="load")
        clock = Clock()
        with clock.timing():
            completions = generator.generate(requests, desc=desc)
    finally:
        generator.close()
    at_length = sum(c.finish_reason == "length" for c in completions) / len(completions)
    return Rate(sum(c.completion_tokens for c in completions), clock.wall, clock.cpu, at_length)


def _fill(batch: llama_cpp.llama_batch, entries: Sequence[tuple[int, int, int, bool]]) -> None:
    """Put (token, position, sequence, wants logits) entries into a llama_batch."""
    for i, (token, pos, seq, logits) in enumerate(entries):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
        batch.seq_id[i][0] = seq
    batch.n_tokens = len(entries)


def _decode(ctx: llama_cpp.llama_context_p, batch: llama_cpp.llama_batch) -> None:
    if llama_cpp.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")


def pipeline_waves(prompts: Sequence[list[int]], ids: Sequence[str], batch_size: int, shard_batches: int) -> list[list[list[int]]]:
    """The pipeline's batches when every story runs to max_tokens: each shard, B prompts at a time."""
    shards = ShardPlan.for_batch(batch_size, shard_batches).split(ids)
    return [[prompts[j] for j in shard[i : i + batch_size]] for shard in shards for i in range(0, len(shard), batch_size)]


def ceiling(llm: llama_cpp.Llama, n_ctx: int, batch_size: int, waves: Sequence[Sequence[list[int]]] | None, steps: int) -> Rate:
    """Bare llama_decode: waves of up to ``batch_size`` sequences, each ``steps`` tokens long.
    With ``waves`` of prompts, each wave's prompts are prefilled in one call and timed (the
    pipeline's work); without, ``batch_size`` sequences start from an untimed 8-token prompt."""
    short = llm.tokenize(b"Once upon a time there was a", add_bos=False)[:8]
    timed_prompts = waves is not None
    waves = waves or [[short] * batch_size]
    ctx = open_batch_context(llm, n_ctx, batch_size)
    batch = llama_cpp.llama_batch_init(max(sum(map(len, wave)) for wave in waves), 0, 1)
    clock = Clock()
    try:
        _wave(ctx, batch, waves[0], 2, Clock(), timed_prompts)  # a new context's first decodes pay one-off costs
        for wave in waves:
            _wave(ctx, batch, wave, steps, clock, timed_prompts)
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return Rate(sum(len(wave) for wave in waves) * steps, clock.wall, clock.cpu)


def _wave(ctx, batch, wave: Sequence[list[int]], steps: int, clock: Clock, timed_prompts: bool) -> None:
    """Prefill the wave's prompts, then ``steps - 1`` decodes of one token per sequence (the first
    token comes from the prefill's logits)."""
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    prefill = [(t, p, s, p == len(prompt) - 1) for s, prompt in enumerate(wave) for p, t in enumerate(prompt)]
    if not timed_prompts:
        _fill(batch, prefill)
        _decode(ctx, batch)
        llama_cpp.llama_synchronize(ctx)
    with clock.timing():
        if timed_prompts:
            _fill(batch, prefill)
            _decode(ctx, batch)
        _fill(batch, [(prompt[-1], len(prompt), s, True) for s, prompt in enumerate(wave)])
        for step in range(steps - 1):
            for s, prompt in enumerate(wave):
                batch.pos[s] = len(prompt) + step
            _decode(ctx, batch)
        llama_cpp.llama_synchronize(ctx)


def best(rates: Sequence[Rate]) -> Rate:
    """The fastest round by each clock: other jobs only ever slow a run down."""
    fastest, thriftiest = max(rates, key=lambda r: r.per_s), max(rates, key=lambda r: r.per_cpu_s)
    return Rate(fastest.tokens, fastest.seconds, thriftiest.cpu_seconds * fastest.tokens / thriftiest.tokens, fastest.at_length)


def measure(params: Params, config: Config, rounds: int) -> Iterator[dict[str, Rate]]:
    """After each round, the best rate so far of every run (a killed run keeps finished rounds)."""
    path = resolve_model_path(params.model.path)
    llm = load_llama(path, params.model)
    requests = benchmark_requests(params, max(config.n_single, config.n_batched), config.max_tokens)
    single_requests, batched_requests = requests[: config.n_single], requests[: config.n_batched]
    prompts = [completion_arguments(llm, r)["prompt"] for r in batched_requests]
    bare_single_stream(llm, [warm_up(requests[0])])
    runs: dict[str, list[Rate]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):  # alternate pipeline and baselines so load changes hit both
            runs.setdefault("bare 1", []).append(bare_single_stream(llm, single_requests))
            runs.setdefault("pipeline 1", []).append(pipeline(params, 1, single_requests, Path(tmp) / f"b1-{round_}"))
            for b in config.batch_sizes:
                runs.setdefault(f"pipeline {b}", []).append(pipeline(params, b, batched_requests, Path(tmp) / f"b{b}-{round_}"))
                waves = pipeline_waves(prompts, [r.id for r in batched_requests], b, params.generation.shard_batches)
                runs.setdefault(f"ceiling {b}", []).append(ceiling(llm, params.model.n_ctx, b, waves, config.max_tokens))
                runs.setdefault(f"decode {b}", []).append(ceiling(llm, params.model.n_ctx, b, None, config.max_tokens))
            yield {name: best(rates) for name, rates in runs.items()}


def _ratio(a: Rate, b: Rate) -> str:
    return f"{a.per_s / b.per_s:.3f} (CPU {a.per_cpu_s / b.per_cpu_s:.3f})"


def _rate(r: Rate) -> str:
    return f"{r.per_s:.1f} ({r.per_cpu_s:.1f})"


def report(rates: dict[str, Rate], config: Config) -> list[tuple[str, ...]]:
    """Table rows; also printed, one line per comparison. Ratios by wall clock, then by CPU time."""
    bare, pipe1 = rates["bare 1"], rates["pipeline 1"]
    rows = [("1", _rate(bare), _rate(pipe1), f"{_ratio(pipe1, bare)}, goal >= 0.95", "", "", "", f"{pipe1.at_length:.0%}")]
    print(f"batch 1: pipeline {pipe1.per_s:.1f} tok/s, bare create_chat_completion {bare.per_s:.1f} tok/s, ratio {_ratio(pipe1, bare)} (goal >= 0.95)")
    for b in config.batch_sizes:
        pipe, ceil, dec = rates[f"pipeline {b}"], rates[f"ceiling {b}"], rates[f"decode {b}"]
        rows.append(
            (str(b), _rate(bare), _rate(pipe), _ratio(pipe, bare), _rate(ceil), f"{_ratio(pipe, ceil)}, goal >= 0.85", _rate(dec), f"{pipe.at_length:.0%}")
        )
        print(
            f"batch {b}: pipeline {pipe.per_s:.1f} tok/s = {pipe.per_s / bare.per_s:.2f}x single stream; "
            f"ceiling {ceil.per_s:.1f} tok/s, ratio {_ratio(pipe, ceil)} (goal >= 0.85); "
            f"pure decode {dec.per_s:.1f} tok/s, ratio {_ratio(pipe, dec)}"
        )
    return rows


def markdown(rows: list[tuple[str, ...]], config: Config, params: Params, rounds: int, busy_before: str) -> str:
    head = (
        "| batch | bare single stream | pipeline | pipeline / single stream | ceiling: bare llama_decode, same work "
        "| pipeline / ceiling | pure decode, short prompt | ended at length |"
    )
    return (
        header("generation benchmark", busy_before)
        + f"- model: embedded SmolLM2-135M-Instruct Q4_1, n_threads={params.model.n_threads}, n_ctx={params.model.n_ctx}, "
        f"brainstorm prompt and sampling, max_tokens={config.max_tokens}; best of {rounds} alternating rounds\n"
        f"- requests: {config.n_single} at batch 1, {config.n_batched} at each larger batch size\n\n"
        "Rates are completion tokens per second of wall clock, and in brackets per CPU-second of this "
        "process (all its threads), which other jobs on a shared machine disturb far less; ratios likewise.\n\n"
        f"{table(head, rows)}\n\n"
        "Prompt processing is inside every timing except the pure decode's; model loading is outside. The "
        "pipeline is `open_generator(...).generate` with an empty cache (backend, SQLite, tqdm). The ceiling "
        "does the pipeline's token work in the pipeline's batches (its shards, B requests at a time; each "
        "wave's prompts prefilled in one llama_decode, then one token per sequence per step, logits for "
        "every sequence) with no sampling and no Python per token; the pure decode rate starts after an "
        "untimed 8-token prompt.\n"
    )


def main() -> None:
    # One thread by default: llama.cpp's spinning workers collapse when other jobs share the cores.
    args = llm_arguments(__doc__, "llama.cpp threads (default 1; 2 on a quiet 2-core box)")
    config, rounds = (SMOKE, 1) if args.smoke else (FULL, args.rounds)
    params = load_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"n_threads": args.threads})})
    busy_before = busy()
    for done, rates in enumerate(measure(params, config, rounds), start=1):
        print(f"after round {done} of {rounds}:")
        rows = report(rates, config)
        if args.smoke:
            continue
        write_result("generation.md", markdown(rows, config, params, done, busy_before))
        summary = {
            "n_threads": params.model.n_threads,
            "max_tokens": config.max_tokens,
            "rounds": done,
            "tokens_per_second": {name: round(rate.per_s, 2) for name, rate in rates.items()},
            "tokens_per_cpu_second": {name: round(rate.per_cpu_s, 2) for name, rate in rates.items()},
        }
        write_result("generation.json", json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
