"""The three LLM steps of SYNTHEMPATHY as pure record transforms around the generator.

brainstorm: scenario -> n stories; rewrite: story -> first-person explanation;
respond: explanation -> empathetic response. Each step turns records into requests (seed
derived from the record id), and completions back into records or rejections.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from synthempathy.checks import Check
from synthempathy.filters import Drop
from synthempathy.llm.types import Completion, Request
from synthempathy.params import Params, SamplingParams
from synthempathy.prompts import Prompt, load_prompt
from synthempathy.records import sort_key, story_id, story_index
from synthempathy.results import StageResult
from synthempathy.scenarios import pick_key
from synthempathy.seeding import derive_seed

if TYPE_CHECKING:
    from synthempathy.llm.generator import CachedGenerator

EMPTY = "empty_generation"
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


def build_requests(records: Sequence[dict], prompt: Prompt, sampling: SamplingParams, global_seed: int, stage: str, attempt: int = 0) -> list[Request]:
    """One request per record; ``attempt`` > 0 is a resample round: same prompt, a seed derived
    from the attempt, and the attempt in the cache key."""
    return [
        Request(
            id=r["id"],
            messages=prompt.messages(r),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            repeat_penalty=sampling.repeat_penalty,
            seed=derive_seed(global_seed, stage, r["id"], attempt),
            attempt=attempt,
        )
        for r in records
    ]


def clean_generation(text: str) -> str:
    """Strip a leading label, wrapping quotes and surrounding whitespace; keep the words as written."""
    text = _LEADING_LABEL.sub("", text.strip(), count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def candidate(record: dict, completion: Completion, field: str, attempt: int) -> dict:
    """The record with the completion as ``field`` (cleaned), its finish reason, token count and attempt."""
    return {
        **record,
        field: clean_generation(completion.text),
        f"{field}_finish_reason": completion.finish_reason,
        f"{field}_tokens": completion.completion_tokens,
        f"{field}_attempt": attempt,
    }


Generate = Callable[[Sequence[dict], int], Sequence[Completion]]  # (records, attempt) -> a completion per record


def generate_with_resample(
    records: Sequence[dict], field: str, stage: str, generate: Generate, check: Check, reasons: Sequence[str], resample_attempts: int
) -> StageResult:
    """Attempt 0 for every record, then up to ``resample_attempts`` more rounds, each for the
    records whose last attempt was empty or failed ``check``. Every failed attempt is a rejection
    with its reason, attempt and text; a record is kept with its first passing attempt, or dropped
    when its last attempt fails. Each round is one ``generate`` call over the pending records in
    input order, so the rounds, and the cache keys and shards in them, follow from the inputs alone.
    Metrics hold deterministic counts only (no timings: they must rebuild byte-identically)."""
    result = StageResult(stage, (EMPTY, *reasons), records_in=len(records))
    kept: dict[str, dict] = {}
    finish_reasons: Counter = Counter()
    calls, tokens = Counter(), 0
    pending = list(records)
    for attempt in range(resample_attempts + 1):
        if not pending:
            break
        completions = generate(pending, attempt)
        candidates = [candidate(r, c, field, attempt) for r, c in zip(pending, completions, strict=True)]
        finish_reasons.update(c.finish_reason for c in completions)
        tokens += sum(c.completion_tokens for c in completions)
        calls[str(attempt)] = len(pending)
        verdicts: list[Drop | None] = [Drop(EMPTY, f"finish_reason={c[f'{field}_finish_reason']}") if not c[field] else None for c in candidates]
        nonempty = [i for i, v in enumerate(verdicts) if v is None]
        for i, drop in zip(nonempty, check([candidates[i] for i in nonempty]), strict=True):
            verdicts[i] = drop
        still = []
        for record, cand, verdict in zip(pending, candidates, verdicts, strict=True):
            if verdict is None:
                kept[record["id"]] = cand
            else:
                result.reject(record["id"], verdict.reason, verdict.detail, attempt=attempt, **{field: cand[field]})
                still.append(record)
        pending = still
    result.kept = [kept[r["id"]] for r in records if r["id"] in kept]
    result.extra_metrics = {
        "calls_per_attempt": dict(calls),  # requests sent in each round: 0 is the first draw
        "kept_per_attempt": dict(sorted(Counter(str(r[f"{field}_attempt"]) for r in result.kept).items())),
        "finish_reasons": dict(sorted(finish_reasons.items())),  # every call; "length": hit max_tokens
        "completion_tokens": tokens,  # every call, failed attempts included
        "records_given_up": len(pending),
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


def no_check(records: Sequence[dict]) -> list[Drop | None]:
    return [None] * len(records)


def rounds_through(generator: CachedGenerator, stage: str, prompt: Prompt, sampling: SamplingParams, seed: int) -> Generate:
    """Each round (attempt) is one cached ``generate`` call: requests in growth order, a shard cut
    between story-index blocks, seeds and cache keys derived from the attempt. A killed run resumes
    every round from the cache and decodes again only the shard that was open."""

    def generate(pending: Sequence[dict], attempt: int) -> list[Completion]:
        requests = build_requests(growth_order(pending, seed), prompt, sampling, seed, stage, attempt)
        desc = stage if attempt == 0 else f"{stage} (resample {attempt})"
        completions = {c.id: c for c in generator.generate(requests, desc=desc, segments=[story_index(r.id) for r in requests])}
        return [completions[r["id"]] for r in pending]

    return generate


def run_generation(
    stage: str, records: Sequence[dict], field: str, sampling: SamplingParams, params: Params, check: Check | None = None, reasons: Sequence[str] = ()
) -> tuple[StageResult, dict]:
    """Generate ``field`` for every record through the cached generator, resampling a record whose
    text fails ``check`` up to ``generation.resample_attempts`` times (None: no check, no resample).
    Returns the result (records in their input order) and the run's log: throughput, engine and
    workers, which are neither reproducible nor deciding the outputs, so they go to
    ``logs/<stage>.json``, never to metrics."""
    from synthempathy.llm.runtime import open_generator  # imports llama.cpp lazily

    prompt = load_prompt(stage)  # a bad prompt file fails before the model is loaded
    generator = open_generator(params)
    generate = rounds_through(generator, stage, prompt, sampling, params.seed)
    try:
        if check is None:
            result = generate_with_resample(records, field, stage, generate, no_check, (), 0)
        else:
            result = generate_with_resample(records, field, stage, generate, check, reasons, params.generation.resample_attempts)
    finally:
        generator.close()
    stats = generator.stats
    log = {**stats.__dict__, "tokens_per_second": round(stats.tokens_per_second(), 2), "batch_size": params.generation.batch_size}
    return result, log
