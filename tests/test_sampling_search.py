"""Brainstorm sampling grid search: the ranking rule, parsing `dvc exp show --json`, and (slow)
the whole command on a 2 x 2 grid of real DVC experiments in a temp copy of the repo."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthempathy.params import load_params
from synthempathy.sampling_search import COLUMNS, Trial, coherence_bar, experiment_name, grid_plot_rows, markdown_table, parse_exp_show, rank, verdict

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures/exp_show_sampling_search.json"
# The captured document: a 2 x 2 grid run by scripts/sampling_search.py, plus one experiment
# queued by hand with an invalid top_p (1.5), which failed.
FIXTURE_NAMES = [experiment_name(t, p) for t in (0.7, 1.2) for p in (0.9, 1.0)]
FAILED_NAME = "brainstorm-invalid"


def trial(name, temperature, top_p, diversity, coherence):
    return Trial(name, temperature, top_p, {**dict.fromkeys(COLUMNS, 0.5), "diversity": diversity, "coherence": coherence})


def test_pick_is_the_most_diverse_coherent_enough_setting():
    trials = [
        trial("hot", 1.3, 1.0, diversity=0.9, coherence=0.40),  # most diverse, but incoherent
        trial("warm", 1.0, 0.95, diversity=0.6, coherence=0.70),
        trial("cool", 0.7, 0.9, diversity=0.4, coherence=0.90),
        Trial("broken", 0.9, 0.9, None),
    ]
    ranked = rank(trials, "diversity", bar=0.6)
    assert [t.name for t in ranked] == ["warm", "cool", "hot", "broken"]
    assert verdict(ranked, "diversity", 0.6).startswith("Pick: brainstorm.temperature=1 brainstorm.top_p=0.95")
    assert rank(trials, "diversity", bar=0.0)[0].name == "hot"
    assert rank(trials, "distinct_2", bar=0.6)[0].name == "cool"  # tie on distinct_2: more coherent


def test_without_a_qualifying_setting_the_most_coherent_is_picked_and_said_so():
    trials = [trial("a", 0.7, 0.9, 0.2, 0.5), trial("b", 1.1, 1.0, 0.8, 0.3)]
    ranked = rank(trials, "diversity", bar=0.6)
    assert ranked[0].name == "a"
    assert verdict(ranked, "diversity", 0.6).startswith("No setting reaches coherence >= 0.6000; the most coherent is brainstorm.temperature=0.7")
    assert verdict(rank([Trial("x", 0.7, 0.9, None)], "diversity", 0.6), "diversity", 0.6).startswith("No pick")


def test_coherence_bar_follows_the_grid_s_most_coherent_setting_above_the_floor():
    trials = [trial("a", 0.7, 0.9, 0.2, 0.50), trial("b", 1.1, 1.0, 0.8, 0.47), trial("c", 1.3, 1.0, 0.9, 0.40), Trial("x", 0.9, 0.9, None)]
    assert coherence_bar(trials, min_coherence=0.3, max_coherence_drop=0.05) == pytest.approx(0.45)
    assert coherence_bar(trials, min_coherence=0.48, max_coherence_drop=0.05) == 0.48  # the floor wins
    assert coherence_bar([Trial("x", 0.9, 0.9, None)], min_coherence=0.3, max_coherence_drop=0.05) == 0.3
    # "diversity at kept coherence": b gives up 0.03 of coherence for +0.6 diversity, c gives up too much.
    assert rank(trials, "diversity", coherence_bar(trials, 0.3, 0.05))[0].name == "b"
    assert rank(trials, "diversity", coherence_bar(trials, 0.3, 0.0))[0].name == "a"


def test_ties_break_towards_the_cooler_setting_whatever_the_input_order():
    trials = [trial(f"t{t}-p{p}", t, p, 0.5, 0.8) for t in (1.1, 0.7, 0.9) for p in (1.0, 0.9)]
    expected = [f"t{t}-p{p}" for t in (0.7, 0.9, 1.1) for p in (0.9, 1.0)]
    assert [t.name for t in rank(trials, "diversity", 0.6)] == expected
    assert [t.name for t in rank(list(reversed(trials)), "diversity", 0.6)] == expected


def test_markdown_table_lists_every_trial_best_first():
    ranked = rank([trial("a", 0.7, 0.9, 0.2, 0.9), trial("b", 1.1, 1.0, 0.8, 0.7), Trial("c", 0.9, 1.0, None)], "diversity", 0.6)
    lines = markdown_table(ranked, "diversity", 0.6).splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| rank")]
    assert [row.split(" | ")[-1].rstrip(" |") for row in rows] == ["b", "a", "c"]
    assert "| 1 | 1.1 | 1 | 0.8000 | 0.7000 |" in rows[0] and "failed" in rows[2] and lines[-1].startswith("Pick: brainstorm.temperature=1.1")


def test_parse_a_real_exp_show_document():
    trials = parse_exp_show(json.loads(FIXTURE.read_text()), [*FIXTURE_NAMES, FAILED_NAME, "never-ran"])
    assert [(t.name, t.temperature, t.top_p) for t in trials[:4]] == [(experiment_name(t, p), t, p) for t in (0.7, 1.2) for p in (0.9, 1.0)]
    assert all(0 <= t.score("diversity") <= 1 and 0 <= t.score("coherence") <= 1 for t in trials[:4])
    assert trials[4].scores is None and trials[5].scores is None


def test_shipped_grid_is_valid_and_not_a_stage_param():
    search = load_params().sampling_search
    assert search.temperatures and search.top_ps and 0 <= search.min_coherence <= 1
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = [str(p) for stage in stages.values() for p in stage.get("params", [])]
    assert not [p for p in listed if p.startswith("sampling_search")]


# --- slow: real experiments ----------------------------------------------------------------

# Written into the copy's params.yaml. train_scorer does not depend on brainstorm: it runs once,
# before the search, and every experiment checks its outputs out of the DVC cache.
TINY_PARAMS = {
    "sampling_search": {"temperatures": [0.7, 1.2], "top_ps": [0.9, 1.0], "min_coherence": 0.3, "max_coherence_drop": 0.05, "objective": "diversity"},
    "train_scorer": {"max_posts": 200, "cv_folds": 2, "heldout_posts": 20},
}
# Passed to each experiment. Tiny: 9 scenarios x 2 stories, 4-token explanations and responses
# (the filter then drops them all as truncated; survival 0 is fine here) that the align
# thresholds let through, so every stage up to `report` has records to work on.
TINY_EXTRA = [
    "-S", "model.n_threads=1",
    "-S", "scenarios.n_per_category=1",
    "-S", "brainstorm.n_stories=2",
    "-S", "brainstorm.max_tokens=12",
    "-S", "rewrite.max_tokens=4",
    "-S", "respond.max_tokens=4",
    "-S", "align.min_scenario_similarity=-1",
    "-S", "align.min_story_similarity=-1",
    "-S", "align.min_response_similarity=-1",
    "-S", "report.diversity_sample=10",
]  # fmt: skip


def dvc_outputs(dvc_yaml: Path) -> list[str]:
    """Paths of every stage output: a DVC output must not be tracked by git in the copy."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    entries = [o for stage in stages.values() for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
    return [next(iter(o)) if isinstance(o, dict) else o for o in entries]


def copy_repo(dest: Path, overrides: dict[str, dict]) -> Path:
    """The checkout's committed-or-new files (no DVC outputs, no dvc.lock) as a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    outputs = dvc_outputs(ROOT / "dvc.yaml")
    for name in files:
        if name != "dvc.lock" and (ROOT / name).is_file() and not any(name == o or name.startswith(o.rstrip("/") + "/") for o in outputs):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


@pytest.mark.skipif(not os.environ.get("SYNTHEMPATHY_SLOW_TESTS"), reason="queues 4 DVC experiments (~10 min on 2 cores): make test-slow")
def test_slow_grid_search_runs_four_experiments_ranks_and_applies(tmp_path):
    """The slow one: 4 queued DVC experiments up to `report`, then --apply."""
    repo = copy_repo(tmp_path, TINY_PARAMS)
    env = {k: v for k, v in os.environ.items() if k != "SYNTHEMPATHY_CACHE"}  # the script must set it
    dvc_env = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    for cmd in (["dvc", "repro", "train_scorer"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "scorer"]):
        subprocess.run(cmd, cwd=repo, env=dvc_env, check=True, capture_output=True)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "scripts/sampling_search.py", "--apply", "--extra", *TINY_EXTRA], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    print(f"grid of 4 experiments: {time.monotonic() - start:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (repo / "metrics/sampling_search.md").read_text()
    assert table in result.stdout
    assert "Stage 'train_scorer' didn't change, skipping" in result.stdout
    shown = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, env=dvc_env, capture_output=True, text=True, check=True)
    trials = parse_exp_show(json.loads(shown.stdout), FIXTURE_NAMES)
    assert all(t.scores and 0 < t.scores["stories"] <= 18 for t in trials)  # 9 scenarios x 2, minus empty ones
    assert {(t.temperature, t.top_p) for t in trials} == {(0.7, 0.9), (0.7, 1.0), (1.2, 0.9), (1.2, 1.0)}
    bar = coherence_bar(trials, 0.3, 0.05)
    ranked = rank(trials, "diversity", bar)
    assert table == markdown_table(ranked, "diversity", bar)
    assert json.loads((repo / "metrics/plots/sampling_grid.json").read_text()) == grid_plot_rows(ranked, bar)  # dvc plots sampling_grid
    applied = yaml.safe_load((repo / "params.yaml").read_text())["brainstorm"]  # --apply
    assert (applied["temperature"], applied["top_p"]) == (ranked[0].temperature, ranked[0].top_p) and applied["max_tokens"] == 12
    assert f"Applied {ranked[0].name}." in result.stdout
    # The experiments ran in temp copies that are gone: their completions can only be in the
    # repo's own cache if the queue worker saw the absolute SYNTHEMPATHY_CACHE.
    with sqlite3.connect(repo / ".cache/llm/completions.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] >= 4 * 18  # brainstorm keys differ per setting
