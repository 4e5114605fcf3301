"""Ablation table of the fine-tuning claim (`make ablation`; run `make paper` first).

    python scripts/ablation.py [--preset presets/paper.yaml] [--seeds 3] [--max-full-size 1000]

1. The unfiltered pairs: `dvc exp run` of the preset with generation.checks=false up to
   `respond` (the scenarios' first draws, no resampling, before align and filter; the LLM
   cache already holds most of them).
2. The filtered corpus: `dvc exp run` of the preset (DVC's run cache restores `make paper`'s
   outputs), which also leaves the workspace as `make paper` left it.
3. Human EPITOME responses: every annotated pair whose seeker post is not an evaluation situation.

Then the preset's LoRA recipe and evaluation (finetune.*, evaluate.* of the workspace params) on
each set: at the smallest set's size and steps with --seeds seeds, and each larger set at full
size (sets over --max-full-size pairs are left out and named). The base model's replies are
generated and scored once. Writes metrics/ablation.json (every run) and metrics/ablation.md
(the table the README shows).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: import the package from this checkout

from synthempathy.ablation import Run, human_sft_records, markdown_table, plan_runs, run_key, subsample, summarise  # noqa: E402
from synthempathy.empathy.data import load_epitome, normalise_text, pairs_table, stage_files  # noqa: E402
from synthempathy.empathy.scorer import load_scorer  # noqa: E402
from synthempathy.errors import InputError  # noqa: E402
from synthempathy.evaluate import compare_scores, generate_responses, read_situations, reply_stats, summary_line  # noqa: E402
from synthempathy.experiments import dvc, dvc_env, load_preset, set_param_args  # noqa: E402
from synthempathy.export import sft_records  # noqa: E402
from synthempathy.finetune import encode_example, load_base, planned_steps, select_device, train_lora  # noqa: E402
from synthempathy.io import atomic_path, read_jsonl, write_json_atomic  # noqa: E402
from synthempathy.params import load_params  # noqa: E402
from synthempathy.paths import cache_root, locked_md5s, stage_path  # noqa: E402

RESULTS = Path("metrics/ablation.json")
TABLE = Path("metrics/ablation.md")

log = logging.getLogger("ablation")


def training_sets(preset: str, situations: list[dict]) -> dict[str, list[dict]]:
    """The three sets of SFT records (steps 1-3 of the module doc)."""
    overrides = load_preset(preset)
    # Step 2 sets generation.checks back to what it was, unless the preset sets it itself.
    paper = {"generation.checks": load_params().generation.checks, **overrides}
    env = dvc_env()
    dvc(["exp", "run", *set_param_args({**overrides, "generation.checks": False}), "respond"], env)
    unfiltered = sft_records(read_jsonl(stage_path("respond", "pairs"), required=("id", "explanation", "response")))
    dvc(["exp", "run", *set_param_args(paper)], env)
    filtered = read_jsonl(stage_path("export", "sft"), required=("id", "messages"))
    exclude = {normalise_text(s["text"]) for s in situations}
    files = stage_files()
    human = human_sft_records(pairs_table(load_epitome(files), files), exclude)
    return {"filtered": filtered, "unfiltered": unfiltered, "human": human}


def cached(key: str, compute: Callable[[], dict], what: str) -> dict:
    """``compute()``'s result, kept under the LLM cache's root; a finished run is never redone."""
    path = cache_root() / "ablation" / f"{key}.json"
    if path.is_file():
        log.info("%s: finished earlier (%s)", what, path)
        return json.loads(path.read_text(encoding="utf-8"))
    result = compute()
    write_json_atomic(path, result)
    return result


def evaluate_replies(texts, replies, base_scores, scorer, params) -> dict:
    scores = scorer.score(list(zip(texts, replies, strict=True)))
    return {"metrics": compare_scores(base_scores, scores, params.evaluate.bootstrap_samples, params.seed), "replies": reply_stats(replies)}


def train_and_evaluate(run: Run, records: list[dict], texts: list[str], base_scores: list[dict], scorer, params, device) -> dict:
    """One row's LoRA run on a fresh copy of the base model, then its replies scored against the base's."""
    finetune = params.finetune.model_copy(update={"seed": run.seed, "max_steps": run.steps})
    model, tokenizer = load_base(finetune.base_model, device)
    examples = [e for e in (encode_example(tokenizer, r["messages"], finetune.max_length) for r in subsample(records, run.size, run.seed)) if e]
    model, losses = train_lora(model, examples, finetune, tokenizer.pad_token_id)
    replies = generate_responses(model, tokenizer, texts, params.evaluate, params.seed, f"{run.source} seed {run.seed}")
    return {**run.__dict__, "loss_start": losses[0], "loss_end": losses[-1], **evaluate_replies(texts, replies, base_scores, scorer, params)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="presets/paper.yaml")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per equal-size comparison (the first is finetune.seed)")
    parser.add_argument("--max-full-size", type=int, default=1000, help="leave out full-size runs of larger sets (their steps grow with size)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.chdir(ROOT)
    started = time.perf_counter()
    try:
        params = load_params()
        situations = read_situations(params.evaluate.situations, params.evaluate.text_column, params.evaluate.limit)
        sets = training_sets(args.preset, situations)
        params = load_params()  # the preset's, now applied to the workspace
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        return exc.returncode  # dvc printed why
    texts = [s["text"] for s in situations]
    f = params.finetune
    seeds = [f.seed + i for i in range(args.seeds)]
    runs, skipped = plan_runs({k: len(v) for k, v in sets.items()}, seeds, lambda n: planned_steps(n, f.batch_size, f.epochs, f.max_steps), args.max_full_size)
    for line in skipped:
        log.info("left out: %s", line)
    device = select_device(f.device, f.threads)
    scorer = load_scorer(stage_path("evaluate", "scorer"))
    recipe = {
        "finetune": params.finetune.model_dump(),
        "evaluate": params.evaluate.model_dump(),
        "seed": params.seed,
        "situations": texts,
        "scorer": locked_md5s("train_scorer")[stage_path("evaluate", "scorer")],  # a retrained scorer gives other scores
    }

    def base_run() -> dict:
        model, tokenizer = load_base(f.base_model, device)
        replies = generate_responses(model, tokenizer, texts, params.evaluate, params.seed, "base")
        scores = scorer.score(list(zip(texts, replies, strict=True)))
        return {"scores": scores, **evaluate_replies(texts, replies, scores, scorer, params)}  # base vs itself: its means and spreads

    base = cached(run_key(run="base", **recipe), base_run, "base model")
    results = []
    for n, run in enumerate(runs, start=1):
        what = f"run {n}/{len(runs)}: {run.source}, {run.comparison}, {run.size} pairs, {run.steps} steps, seed {run.seed}"
        log.info("%s", what)
        key = run_key(run=run.__dict__, records=sets[run.source], **recipe)
        results.append(cached(key, lambda run=run: train_and_evaluate(run, sets[run.source], texts, base["scores"], scorer, params, device), what))
        log.info("%s", summary_line(results[-1]["metrics"]))
    rows = summarise(results)
    table = markdown_table(base, rows)
    write_json_atomic(
        RESULTS, {"situations": len(texts), "base": {k: v for k, v in base.items() if k != "scores"}, "runs": results, "rows": rows, "left_out": skipped}
    )
    with atomic_path(TABLE) as tmp:
        tmp.write_text(table, encoding="utf-8")
    print(table)
    log.info("%d runs in %.0f s", len(runs), time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
