"""Yield of the generation levers (issue 14): each variant runs brainstorm -> rewrite -> respond
on the default scenarios (data/scenarios.jsonl) with the pipeline's own code (prompts, checks,
resampling, cached generator), and counts what passes the checks where texts are made. The checks
are the filter's rules and the align stage's bars (synthempathy/checks.py), so "final" here is the
corpus before near-duplicate removal; mean empathy is scored by the trained scorer
(models/empathy_scorer, from dvc repro).

Variants add one lever at a time to the prompts and params before issue 14 (git rev BEFORE):
checks + resampling, the few-shot brainstorm prompt, temperature 0.7, the word targets of the
rewrite and respond prompts (git rev WORD_TARGETS), the respond prompt that answers the writer
(= the shipped default), and the default without resampling. Every row runs today's checks, the
writer_as_friend one included.

Calls, calls that hit max_tokens and completion tokens are deterministic (seeded) and say what a
variant costs. No seconds per row: the variants share the LLM cache (rows reuse each other's
calls, and the default's come from dvc repro); the default's wall time is dvc repro's.

    python -m benchmarks.bench_yield            # writes results/yield.md (~15 min on 2 cores after dvc repro)
    python -m benchmarks.bench_yield --smoke    # one scenario per category, no resampling; prints only
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import busy, header, table, write_result
from synthempathy.checks import stage_check
from synthempathy.empathy.scorer import load_scorer, score_records
from synthempathy.generation import expand_scenarios, generate_with_resample, rounds_through
from synthempathy.io import read_jsonl
from synthempathy.llm.runtime import open_generator
from synthempathy.params import Params, load_params
from synthempathy.prompts import Prompt, load_prompt

BEFORE = "f54334f"  # main before issue 14: prompts without examples, brainstorm temperature 0.9
WORD_TARGETS = "17bc91c"  # main before the respond prompt answering the writer ("A friend wrote to you")
STAGES = (("brainstorm", "story"), ("rewrite", "explanation"), ("respond", "response"))


@dataclass(frozen=True)
class Variant:
    name: str
    prompts_from: dict[str, str] = field(default_factory=dict)  # stage -> git rev of its prompt ('' : this checkout)
    brainstorm_temperature: float | None = None  # None: params.yaml's
    resample_attempts: int | None = None


DEFAULT = Variant("+ respond prompt answering the writer, one example (default)")
OLD_PROMPTS = {"brainstorm": BEFORE, "rewrite": BEFORE, "respond": BEFORE}
VARIANTS = (
    Variant("before: old prompts, temperature 0.9, no resampling", OLD_PROMPTS, 0.9, 0),
    Variant("+ resampling (k=3)", OLD_PROMPTS, 0.9, 3),
    Variant("+ few-shot brainstorm prompt", {"rewrite": BEFORE, "respond": BEFORE}, 0.9, 3),
    Variant("+ brainstorm temperature 0.7", {"rewrite": BEFORE, "respond": BEFORE}, 0.7, 3),
    Variant("+ word targets 80/100", {"respond": WORD_TARGETS}),
    DEFAULT,
    Variant("default without resampling (k=0)", resample_attempts=0),
)


def prompt_at(stage: str, rev: str, tmp: Path) -> Prompt:
    if not rev:
        return load_prompt(stage)
    text = subprocess.run(["git", "show", f"{rev}:prompts/{stage}.yaml"], check=True, capture_output=True, text=True).stdout
    (tmp / f"{stage}.yaml").write_text(text, encoding="utf-8")
    return load_prompt(stage, tmp)


def variant_params(params: Params, variant: Variant) -> Params:
    generation = params.generation.model_copy(
        update={"checks": True} | ({"resample_attempts": variant.resample_attempts} if variant.resample_attempts is not None else {})
    )
    brainstorm = params.brainstorm.model_copy(update={"temperature": variant.brainstorm_temperature} if variant.brainstorm_temperature is not None else {})
    return params.model_copy(update={"generation": generation, "brainstorm": brainstorm})


def run_variant(variant: Variant, scenarios: list[dict], base: Params, n_stories: int, scorer) -> list[str]:
    params = variant_params(base, variant)
    with tempfile.TemporaryDirectory() as tmp:
        generator = open_generator(params)
        records = expand_scenarios(scenarios, n_stories)
        requested = len(records)
        counts, calls, cut, tokens, first_draws_kept = [], 0, 0, 0, 0
        try:
            for stage, text_field in STAGES:
                check, reasons = stage_check(text_field, params)
                prompt = prompt_at(stage, variant.prompts_from.get(stage, ""), Path(tmp))
                generate = rounds_through(generator, stage, prompt, getattr(params, stage), params.seed)
                result = generate_with_resample(records, text_field, stage, generate, check, reasons, params.generation.resample_attempts)
                metrics = result.extra_metrics
                calls += sum(metrics["calls_per_attempt"].values())
                cut += metrics["finish_reasons"].get("length", 0)
                tokens += metrics["completion_tokens"]
                if stage == "brainstorm":
                    first_draws_kept = metrics["kept_per_attempt"].get("0", 0)
                records = result.kept
                counts.append(len(records))
        finally:
            generator.close()
    categories = len(Counter(r["category"] for r in records))
    empathy = statistics.mean(r["empathy"] for r in score_records(records, scorer)) if records else float("nan")
    return [
        variant.name,
        f"{first_draws_kept / requested:.2f}",
        *(str(c) for c in counts),
        f"{counts[-1] / requested:.2f}",
        f"{categories}/9",
        f"{empathy:.2f}",
        str(calls),
        str(cut),
        str(tokens),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one scenario per category, first and last variant, no file")
    args = parser.parse_args()
    busy_before = busy()
    params = load_params()
    scenarios = read_jsonl(Path("data/scenarios.jsonl"), required=("id", "text", "category", "severity"))
    variants = VARIANTS
    if args.smoke:
        seen: set[str] = set()
        scenarios = [s for s in scenarios if not (s["category"] in seen or seen.add(s["category"]))]
        variants = tuple(Variant(v.name, v.prompts_from, v.brainstorm_temperature, 0) for v in (VARIANTS[0], DEFAULT))
    scorer = load_scorer(Path("models/empathy_scorer"))
    rows = [run_variant(v, scenarios, params, params.brainstorm.n_stories, scorer) for v in variants]
    head = (
        "| variant | first-draw stories passing | stories | explanations | pairs | final / requested | categories | mean empathy"
        " | LLM calls | calls hitting max_tokens | completion tokens |"
    )
    text = table(head, rows)
    print(text)
    if args.smoke:
        return
    requested = len(scenarios) * params.brainstorm.n_stories
    write_result(
        "yield.md",
        header("Yield of the generation levers (issue 14)", busy_before)
        + f"- {len(scenarios)} scenarios (data/scenarios.jsonl) x {params.brainstorm.n_stories} stories = {requested} requested;"
        " stories/explanations/pairs: passed the checks where they are made (after resampling)\n\n" + text + "\n",
    )


if __name__ == "__main__":
    main()
