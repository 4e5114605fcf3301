"""How long the paper-scale corpus takes to generate: 6,476 SAD scenarios x 20 stories, each
story then rewritten and answered (three generations per story, every story assumed to survive).

Tokens per generation come from the pipeline's own outputs (``<field>_tokens`` in
data/stories.jsonl, data/explanations.jsonl, data/pairs.jsonl) where they exist, else from the
paper's mean lengths. Throughput is the CPU pipeline rate measured by bench_generation
(benchmarks/results/generation.json); a GPU's llama.cpp rate is measured by `make gpu-check`
where a GPU is present; the rows for vLLM on one GPU (generation.engine: openai) use PUBLISHED
throughput figures, labelled as such.

    python -m benchmarks.bench_projection            # writes benchmarks/results/projection.md
    python -m benchmarks.bench_projection --smoke    # prints only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import RESULTS_DIR, busy, header, write_result

SCENARIOS, STORIES_PER_SCENARIO = 6_476, 20
TOKENS_PER_WORD = 1.33  # English BPE, roughly
# (file, token field, fallback mean tokens, where the fallback comes from)
STEPS = [
    ("data/stories.jsonl", "story_tokens", 107, "3-5 sentence story, ~80 words (brainstorm prompt)"),
    ("data/explanations.jsonl", "explanation_tokens", round(95.5 * TOKENS_PER_WORD), "paper: 95.5 words"),
    ("data/pairs.jsonl", "response_tokens", round(153.7 * TOKENS_PER_WORD), "paper: 153.7 words"),
]

# Published output-token throughput of vLLM serving a 7-8B model on ONE GPU: NOT measured here.
# (model, GPU, how it was measured, output tokens/s, source)
PUBLISHED_VLLM = [
    (
        "Mistral-7B-Instruct-v0.3",
        "RTX 4090 24 GB",
        "vLLM OpenAI server, 256 prompt / 128 output tokens, 48 requests in flight",
        1_190,
        "https://mushfiqrahman.dev/benchmarking-mistral-7b-on-rtx-4090-vllm-concurrency-latency-and-capacity-planning/",
    ),
    (
        "Llama-3.1-8B-Instruct",
        "H100 80 GB",
        "vLLM 0.23.0 server at saturation (the source's best vLLM point)",
        5_333,
        "https://runinfra.ai/news/vllm-vs-sglang-vs-tensorrt-llm-benchmark",
    ),
    (
        "Llama-3.1-8B-Instruct, bf16",
        "H100 80 GB",
        "vLLM offline batch inference, 1,000 ShareGPT prompts",
        12_553,
        "https://research.aimultiple.com/inference-engines",
    ),
]


def mean_tokens(path: str, field: str) -> tuple[float, int] | None:
    """Mean of ``field`` over a JSONL output, and how many records had it; None without data."""
    if not Path(path).is_file():
        return None
    values = [record[field] for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip() and field in (record := json.loads(line))]
    return (sum(values) / len(values), len(values)) if values else None


def measured_rates() -> dict[str, float]:
    """Pipeline tokens/s per batch size from the last bench_generation run, if any."""
    path = RESULTS_DIR / "generation.json"
    if not path.is_file():
        return {}
    rates = json.loads(path.read_text())["tokens_per_second"]
    return {name.split()[1]: rate for name, rate in rates.items() if name.startswith("pipeline ")}


def paper_scale_tokens() -> tuple[list[str], float, float]:
    """Table rows (generation, mean tokens, source), tokens per story, and generated tokens in all."""
    rows, per_story = [], 0.0
    for path, field, fallback, source in STEPS:
        measured = mean_tokens(path, field)
        mean = measured[0] if measured else fallback
        where = f"measured: mean of {measured[1]:,} records in {path}" if measured else f"estimate: {source}"
        rows.append(f"| {field.removesuffix('_tokens')} | {mean:.1f} | {where} |")
        per_story += mean
    return rows, per_story, SCENARIOS * STORIES_PER_SCENARIO * per_story


def projection() -> tuple[str, str]:
    """The Markdown body, and a one-line summary."""
    stories = SCENARIOS * STORIES_PER_SCENARIO
    rows, per_story, total = paper_scale_tokens()
    rates = measured_rates()
    time_rows = [
        f"| embedded SmolLM2-135M Q4_1, CPU (this machine, bench_generation), batch {batch} | {rate:.1f} | {total / rate / 3600:,.1f} |"
        for batch, rate in sorted(rates.items(), key=lambda item: int(item[0]))
    ] or ["| embedded SmolLM2-135M Q4_1, CPU | not measured (run bench_generation first) | - |"]
    time_rows.append("| 7B Q4 (e.g. Mistral-7B-Instruct Q4_K_M), one GPU, batch B | `make gpu-check` (benchmarks/results/gpu.md) | T / (r_B x 3600) |")
    time_rows += [
        f"| PUBLISHED, not measured here: {model}, {gpu}, {how} ([source]({url})) | {rate:,} | {total / rate / 3600:,.1f} |"
        for model, gpu, how, rate, url in PUBLISHED_VLLM
    ]
    body = f"""
## Tokens to generate

{stories:,} stories ({SCENARIOS:,} scenarios x {STORIES_PER_SCENARIO}), each generated, rewritten and answered:

| generation | mean completion tokens | source |
| --- | --- | --- |
{chr(10).join(rows)}
| **per story** | **{per_story:.1f}** | |

T = {stories:,} x {per_story:.1f} = **{total / 1e6:.1f} M generated tokens** (upper bound: every story survives dedup and every explanation is answered).

## Hours

hours = T / (r x 3600), with r the pipeline's measured tokens/s (completion tokens over wall time,
prompt processing included) at the batch size used.

| model, hardware, batch | r (tokens/s) | hours |
| --- | --- | --- |
{chr(10).join(time_rows)}

The CPU rows are for the embedded 135M model, the only one measured here, on bench_generation's brainstorm
prompts capped at 48 new tokens (about 4 prompt tokens per generated token; the pipeline's three steps
average about 1.4, so r underestimates them: the default corpus's brainstorm ran at 64 tok/s at batch 8, logs/brainstorm.json). A 7B model does ~50x more arithmetic per token: on CPU it would be far slower, and
on a GPU r_B is measured by `make gpu-check` (benchmarks/gpu_check.py) on a Mistral-7B-shaped GGUF.

The PUBLISHED rows are vLLM serving a model of the paper's size (Mistral-7B) or a close one
(Llama-3.1-8B) on one GPU, as third parties measured it, with their prompts and lengths (ours:
{total / 1e6:.1f} M output tokens over {3 * stories:,} requests, {total / (3 * stories):.0f} output tokens each, prompts of
~200-400 tokens); they give the order of magnitude of `generation.engine: openai` against one vLLM
GPU, not a measurement. At r tokens/s the driver must complete r / {total / (3 * stories):.0f} requests per second:
bench_server measures what the openai engine's client sustains (benchmarks/results/server.md).
"""
    best = max(rates.values(), default=None)
    published = ", ".join(f"{total / rate / 3600:,.1f} h at {rate:,} tok/s" for _, _, _, rate, _ in PUBLISHED_VLLM)
    summary = (
        f"projection: {total / 1e6:.1f} M tokens; "
        + (f"{total / best / 3600:,.1f} h at the best measured CPU rate {best:.1f} tok/s" if best else "CPU rate not measured yet")
        + f"; vLLM on one GPU from published figures (not measured): {published}"
    )
    return body, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="prints only")
    args = parser.parse_args()
    busy_before = busy()
    body, summary = projection()
    print(summary)
    if not args.smoke:
        write_result("projection.md", header("Projection: paper-scale corpus", busy_before) + body)


if __name__ == "__main__":
    main()
