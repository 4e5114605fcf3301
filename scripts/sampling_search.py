"""Grid search of brainstorm temperature x top_p as DVC experiments (`make sampling-search`).

    python scripts/sampling_search.py [--apply] [--no-run] [--extra -S key=value ...]

Queues one experiment per (temperature, top_p) of params.yaml:sampling_search, each run up to
the `report` stage (the stage that scores story diversity and coherence), runs the queue one
at a time, then ranks the results from `dvc exp show --json`, prints the table and saves it to
metrics/sampling_search.md, and the grid to metrics/plots/sampling_grid.json (`dvc plots`
sampling_grid). `--apply` applies the pick with `dvc exp apply`. Everything after `--extra` is
passed to every `dvc exp run` (e.g. `--extra -S scenarios.n_per_category=2`).

The queue runs experiments from the last commit plus the workspace's changes to tracked files:
commit new files first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: import the package from this checkout

from synthempathy.experiments import dvc, dvc_env  # noqa: E402
from synthempathy.params import load_params  # noqa: E402
from synthempathy.plots import write_plot  # noqa: E402
from synthempathy.sampling_search import GRID_PLOT_COLUMNS, coherence_bar, experiment_name, grid_plot_rows, markdown_table, parse_exp_show, rank  # noqa: E402

TARGET = "report"  # the scores are the report's; finetune/evaluate would only cost time
TABLE = Path("metrics/sampling_search.md")
GRID_PLOT = Path("metrics/plots/sampling_grid.json")


def save(table: str, grid_rows: list[dict]) -> None:
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(table, encoding="utf-8")
    write_plot(GRID_PLOT, grid_rows, GRID_PLOT_COLUMNS)


def apply(name: str, setting: tuple[float, float], extra: list[str], env: dict[str, str]) -> None:
    """dvc exp apply the pick. The experiments stop at `report`, so it cannot check out the later
    stages' outputs and exits non-zero after applying the params and the outputs it has: check
    the applied params instead of its exit status."""
    dvc(["exp", "apply", name], env, check=False)
    brainstorm = load_params().brainstorm
    if (brainstorm.temperature, brainstorm.top_p) != setting:
        sys.exit(f"error: dvc exp apply {name} did not set brainstorm.temperature/top_p; see its output above")
    print(f"Applied {name}. `dvc repro` rebuilds the stages after `report` with it.")
    if extra:
        print(f"Its --extra params were applied too ({' '.join(extra)}): revert them in params.yaml if they were only for the search.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apply", action="store_true", help="dvc exp apply the pick")
    parser.add_argument(
        "--no-run", action="store_true", help="rank the grid's existing experiments again (e.g. after changing the rule); queue and run nothing"
    )
    # Several experiments at once, each with model.n_threads=1 (pass it in --extra), use the cores
    # without llama.cpp's spinning threads stalling each other; they share the LLM cache (SQLite).
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at once (dvc exp run --jobs)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="passed to every dvc exp run, e.g. --extra -S model.n_threads=1")
    args = parser.parse_args()
    os.chdir(ROOT)
    search = load_params().sampling_search
    env = dvc_env()
    names = []
    for temperature in search.temperatures:
        for top_p in search.top_ps:
            names.append(experiment_name(temperature, top_p))
            # Checks off: the grid scores what the sampling draws. With them on, stories.jsonl holds
            # only stories that passed the on-topic bar, and on_topic would be 1 by construction.
            settings = ["-S", f"brainstorm.temperature={temperature}", "-S", f"brainstorm.top_p={top_p}", "-S", "generation.checks=false"]
            if not args.no_run:
                # A rerun replaces the grid point's experiment. Not with `exp run --force`: that is
                # `repro --force`, which would rerun train_scorer and every other stage in each one.
                dvc(["exp", "remove", names[-1]], env, check=False, quiet=True)
                dvc(["exp", "run", "--queue", "--name", names[-1], *settings, *args.extra, TARGET], env)
    if not args.no_run:
        # A failed experiment is reported in the table, so the queue's exit status is not fatal.
        dvc(["exp", "run", "--run-all", "--jobs", str(args.jobs)], env, check=False)
    trials = parse_exp_show(json.loads(dvc(["exp", "show", "--json"], env, capture=True)), names)
    bar = coherence_bar(trials, search.min_coherence, search.max_coherence_drop)
    ranked = rank(trials, search.objective, bar)
    table = markdown_table(ranked, search.objective, bar)
    save(table, grid_plot_rows(ranked, bar))
    print(table)
    best = ranked[0]
    if best.scores is None:
        return 1
    if args.apply:
        apply(best.name, (best.temperature, best.top_p), args.extra, env)
        save(table, grid_plot_rows(ranked, bar))  # dvc exp apply restored the experiment's (older) copies
    return 0


if __name__ == "__main__":
    sys.exit(main())
