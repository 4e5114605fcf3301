"""First draws of respond-prompt variants (issue 14): the prompt that asked "A friend wrote to you ...
Reply to your friend" made the embedded model talk about "your friend" instead of to the writer.

Each variant answers the same explanations (default: data/explanations.jsonl, so run it after
`make paper` for its 96) with the respond stage's sampling and seeds, attempt 0 only, and counts
what the response check (synthempathy/checks.py, the writer_as_friend rule included) passes, the
replies saying "your friend" (and those to an explanation that names no friend), the calls hitting
max_tokens, words, the share asking a question, and the mean EPITOME scores of the passing replies
(models/empathy_scorer). Variants change one thing at a time: where the explanation goes (quoted in
the user turn, or the user turn itself as in the SFT data), the word target, one example; the
variants' prompt files are in benchmarks/respond_prompts/.

    python -m benchmarks.bench_respond_prompt     # writes results/respond_prompt.md (~25 min on 2 cores, cached after)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import yaml

from benchmarks.bench_yield import WORD_TARGETS, prompt_at
from benchmarks.common import busy, header, table, write_result
from synthempathy.checks import YOUR_FRIEND, stage_check, writer_as_friend
from synthempathy.empathy.scorer import load_scorer, score_records
from synthempathy.generation import candidate, rounds_through
from synthempathy.io import read_jsonl
from synthempathy.llm.runtime import open_generator
from synthempathy.params import load_params
from synthempathy.prompts import PROMPTS_DIR, Prompt, load_prompt

VARIANTS_DIR = Path("benchmarks/respond_prompts")
# (name, prompt: a file in VARIANTS_DIR, "before" (prompts/respond.yaml at WORD_TARGETS) or "shipped", with the shipped example)
VARIANTS = (
    ("'A friend wrote to you', 100 words (before)", "before", False),
    ("user turn, 100 words", "user_turn_100w", False),
    ("user turn, 70 words", "user_turn_70w", False),
    ("user turn, 70 words, one example", "user_turn_70w", True),
    ("quoted, 70 words", "quoted_70w", False),
    ("quoted, 70 words, one example (shipped)", "shipped", False),
)


def variant_prompt(source: str, with_example: bool, tmp: Path) -> Prompt:
    if source == "before":
        return prompt_at("respond", WORD_TARGETS, tmp)
    if source == "shipped":
        return load_prompt("respond")
    data = yaml.safe_load((VARIANTS_DIR / f"{source}.yaml").read_text(encoding="utf-8"))
    if with_example:  # the shipped prompt's example, rendered through this variant's user template
        data["examples"] = yaml.safe_load((PROMPTS_DIR / "respond.yaml").read_text(encoding="utf-8"))["examples"]
    (tmp / "respond.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_prompt("respond", tmp)


def says_your_friend(record: dict) -> tuple[bool, bool]:
    """(the reply says "your friend", ... to an explanation that names no friend: the check's rule)."""
    return YOUR_FRIEND.search(record["response"]) is not None, writer_as_friend(record) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--explanations", type=Path, default=Path("data/explanations.jsonl"))
    args = parser.parse_args()
    busy_before = busy()
    params = load_params()
    records = read_jsonl(args.explanations, required=("id", "scenario_id", "category", "explanation"))
    check, _ = stage_check("response", params.model_copy(update={"generation": params.generation.model_copy(update={"checks": True})}))
    scorer = load_scorer(Path("models/empathy_scorer"))
    generator = open_generator(params)
    rows = []
    try:
        for name, source, with_example in VARIANTS:
            with tempfile.TemporaryDirectory() as tmp:
                prompt = variant_prompt(source, with_example, Path(tmp))
            completions = rounds_through(generator, "respond", prompt, params.respond, params.seed)(records, 0)
            replies = [candidate(r, c, "response", 0) for r, c in zip(records, completions, strict=True)]
            passed = [r for r, drop in zip(replies, check(replies), strict=True) if drop is None]
            friend = [says_your_friend(r) for r in replies]
            scores = score_records(passed, scorer) if passed else []
            mean = {k: statistics.mean(s[k] for s in scores) if scores else float("nan") for k in ("empathy", "er", "ip", "ex")}
            rows.append(
                [
                    name,
                    f"{len(passed)}/{len(replies)}",
                    f"{sum(f for f, _ in friend)} ({sum(u for _, u in friend)})",
                    str(sum(c.finish_reason == "length" for c in completions)),
                    f"{statistics.mean(len(r['response'].split()) for r in replies):.1f}",
                    f"{sum('?' in r['response'] for r in replies) / len(replies):.2f}",
                    f"{mean['empathy']:.2f} ({mean['er']:.2f} / {mean['ip']:.2f} / {mean['ex']:.2f})",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    finally:
        generator.close()
    head = (
        "| respond prompt | first draws passing the check | say 'your friend' (to no friend) | calls hitting max_tokens"
        " | words | with a question | mean empathy of the passing (ER / IP / EX) |"
    )
    write_result(
        "respond_prompt.md",
        header("First draws of respond-prompt variants (issue 14)", busy_before)
        + f"- {len(records)} explanations ({args.explanations}), attempt 0, the respond stage's sampling and seeds\n\n"
        + table(head, rows)
        + "\n",
    )


if __name__ == "__main__":
    main()
