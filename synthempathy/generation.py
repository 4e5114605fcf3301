"""The three LLM steps of SYNTHEMPATHY as pure record transforms around the generator.

brainstorm: scenario -> n stories; rewrite: story -> first-person explanation;
respond: explanation -> empathetic response. Each step turns records into requests (seed
derived from the record id), and completions back into records or rejections.
"""

from __future__ import annotations

import re
from typing import Sequence

from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from synthempathy.llm.types import Completion, Request
from synthempathy.params import Params, SamplingParams, load_params
from synthempathy.prompts import Prompt, load_prompt
from synthempathy.records import rejection, story_id
from synthempathy.seeding import derive_seed

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


def attach_completions(records: Sequence[dict], completions: Sequence[Completion], field: str, stage: str) -> tuple[list[dict], list[dict]]:
    """Add each completion as ``field`` (+ finish reason, token count); an empty one is rejected."""
    kept, rejected = [], []
    for record, completion in zip(records, completions, strict=True):
        text = clean_generation(completion.text)
        if not text:
            rejected.append(rejection(record["id"], stage, "empty_generation", f"finish_reason={completion.finish_reason}"))
            continue
        kept.append(
            {
                **record,
                field: text,
                f"{field}_finish_reason": completion.finish_reason,
                f"{field}_tokens": completion.completion_tokens,
            }
        )
    return kept, rejected


def generation_metrics(records_in: int, kept: Sequence[dict], rejected: Sequence[dict], field: str) -> dict:
    """Deterministic counts only (no timings: metrics are DVC outputs and must rebuild byte-identically)."""
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    finish: dict[str, int] = {}
    for r in kept:
        finish[r[f"{field}_finish_reason"]] = finish.get(r[f"{field}_finish_reason"], 0) + 1
    return {
        "records_in": records_in,
        "records_out": len(kept),
        "rejected": reasons,
        "finish_reasons": finish,
        "completion_tokens": sum(r[f"{field}_tokens"] for r in kept),
    }



def run_generation(stage: str, records: Sequence[dict], field: str, sampling: SamplingParams, params: Params) -> tuple[list[dict], list[dict], dict]:
    """Generate ``field`` for every record through the cached generator; return kept, rejected,
    deterministic metrics. Throughput, engine and workers (not reproducible, and not deciding the
    outputs) go to ``logs/<stage>.json`` only."""
    from synthempathy.llm.runtime import open_generator  # imports llama.cpp lazily

    requests = build_requests(records, load_prompt(stage), sampling, params.seed, stage)
    generator = open_generator(params)
    try:
        completions = generator.generate(requests, desc=stage)
    finally:
        generator.close()
    kept, rejected = attach_completions(records, completions, field, stage)
    stats = generator.stats
    write_json_atomic(
        f"logs/{stage}.json",
        {**stats.__dict__, "tokens_per_second": round(stats.tokens_per_second(), 2), "batch_size": params.generation.batch_size},
    )
    return kept, rejected, generation_metrics(len(records), kept, rejected, field)


def run_generation_stage(stage: str, input_path: str, output_path: str, field: str, required: Sequence[str], expand=None) -> None:
    """The whole body of a generation stage: read, (expand), generate, write outputs and metrics.

    ``expand(records, params)`` turns input records into the records to generate for (brainstorm
    fans each scenario out into story stubs)."""
    params = load_params()
    records = read_jsonl(input_path, required=required)
    if expand is not None:
        records = expand(records, params)
    kept, rejected, metrics = run_generation(stage, records, field, getattr(params, stage), params)
    write_jsonl_atomic(output_path, kept)
    write_jsonl_atomic(f"data/rejected/{stage}.jsonl", rejected)
    write_json_atomic(f"metrics/{stage}.json", metrics)
