"""The three LLM steps of SYNTHEMPATHY as pure record transforms around the generator.

brainstorm: scenario -> n stories; rewrite: story -> first-person explanation;
respond: explanation -> empathetic response. Each step turns records into requests (seed
derived from the record id), and completions back into records or rejections.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from synthempathy.llm.types import Completion, Request
from synthempathy.params import Params, SamplingParams
from synthempathy.prompts import Prompt, load_prompt
from synthempathy.records import sort_key, story_id, story_index
from synthempathy.results import StageResult
from synthempathy.scenarios import pick_key
from synthempathy.seeding import derive_seed

REASONS = ("empty_generation",)
# Labels small models like to prepend ("Story:", "**Response:**"); the text after them is the answer.
_LEADING_LABEL = re.compile(r"^\s*\**\s*(?:story|message|explanation|response|reply|answer)\s*\**\s*:\s*\**\s*", re.I)


def expand_scenarios(scenarios: Sequence[dict], n_stories: int) -> list[dict]:
    """One story stub per (scenario, k); the stub id fixes the seed, so k < n never changes."""
    return [
        {
            "id": story_id(s["id"], k),
            "scenario_id": s["id"],
            "category": s["category"],
            "severity": s["severity"],
            "scenario": s["text"],
        }
        for s in scenarios
        for k in range(n_stories)
    ]


def build_requests(records: Sequence[dict], prompt: Prompt, sampling: SamplingParams, global_seed: int, stage: str) -> list[Request]:
    return [
        Request(
            id=r["id"],
            messages=prompt.messages(r),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            repeat_penalty=sampling.repeat_penalty,
            seed=derive_seed(global_seed, stage, r["id"]),
        )
        for r in records
    ]


def clean_generation(text: str) -> str:
    """Strip a leading label, wrapping quotes and surrounding whitespace; keep the words as written."""
    text = _LEADING_LABEL.sub("", text.strip(), count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def attach_completions(records: Sequence[dict], completions: Sequence[Completion], field: str, stage: str) -> StageResult:
    """Add each completion as ``field`` (+ finish reason, token count); an empty one is rejected.
    Metrics hold deterministic counts only (no timings: they must rebuild byte-identically)."""
    result = StageResult(stage, REASONS, records_in=len(records))
    for record, completion in zip(records, completions, strict=True):
        text = clean_generation(completion.text)
        if not text:
            result.reject(record["id"], "empty_generation", f"finish_reason={completion.finish_reason}")
            continue
        result.keep(
            {
                **record,
                field: text,
                f"{field}_finish_reason": completion.finish_reason,
                f"{field}_tokens": completion.completion_tokens,
            }
        )
    result.extra_metrics = {
        "finish_reasons": dict(sorted(Counter(r[f"{field}_finish_reason"] for r in result.kept).items())),
        "completion_tokens": sum(r[f"{field}_tokens"] for r in result.kept),
    }
    return result


def growth_order(records: Sequence[dict], seed: int) -> list[dict]:
    """The order in which requests are decoded, and so cut into shards (llm/shards.py): story index
    first, then the scenario's pick rank within its category (scenarios.pick_key), then category.

    Raising ``brainstorm.n_stories`` then appends a block of requests at the end, and raising
    ``scenarios.n_per_category`` appends to each story-index block; with a shard cut between
    blocks (run_generation), growth leaves the existing shards and their cached completions
    alone, but for the last shard of each block that grows."""
    by_category: dict[str, set[str]] = {}
    for record in records:
        by_category.setdefault(record["category"], set()).add(record["scenario_id"])
    rank = {sid: i for sids in by_category.values() for i, sid in enumerate(sorted(sids, key=lambda sid: pick_key(seed, sid)))}
    return sorted(records, key=lambda r: (story_index(r["id"]), rank[r["scenario_id"]], r["category"], sort_key(r["id"])))


def run_generation(stage: str, records: Sequence[dict], field: str, sampling: SamplingParams, params: Params) -> tuple[StageResult, dict]:
    """Generate ``field`` for every record through the cached generator. Returns the result (records
    in their input order) and the run's log: throughput, engine and workers, which are neither
    reproducible nor deciding the outputs, so they go to ``logs/<stage>.json``, never to metrics."""
    from synthempathy.llm.runtime import open_generator  # imports llama.cpp lazily

    requests = build_requests(growth_order(records, params.seed), load_prompt(stage), sampling, params.seed, stage)
    generator = open_generator(params)
    try:
        completions = {c.id: c for c in generator.generate(requests, desc=stage, segments=[story_index(r.id) for r in requests])}
    finally:
        generator.close()
    result = attach_completions(records, [completions[r["id"]] for r in records], field, stage)
    stats = generator.stats
    log = {**stats.__dict__, "tokens_per_second": round(stats.tokens_per_second(), 2), "batch_size": params.generation.batch_size}
    return result, log
