"""`make paper` and `make ablation` as a user runs them: a params preset as a real DVC experiment
in a copy of the tiny reproduced repo, then the ablation runs; plus their pure parts."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from helpers import ROOT, run

from synthempathy.ablation import Run, human_sft_records, markdown_table, plan_runs, subsample, summarise
from synthempathy.errors import InputError
from synthempathy.evaluate import compare_scores, reply_stats, summary_line
from synthempathy.experiments import apply_overrides, flatten, load_preset, set_param_args

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def write_preset(path, tree):
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def test_the_shipped_paper_preset_is_valid():
    overrides = load_preset(ROOT / "presets/paper.yaml", ROOT / "params.yaml")
    assert overrides["evaluate.limit"] is None or overrides["evaluate.limit"] >= 200  # the issue's >= 200 held-out situations
    assert overrides["generation.checks"] is True  # the filtered corpus


def test_preset_flattens_to_dvc_set_param_flags(tmp_path):
    preset = write_preset(tmp_path / "p.yaml", {"finetune": {"max_steps": None, "target_modules": ["q_proj", "v_proj"]}, "evaluate": {"limit": 200}})
    overrides = load_preset(preset, ROOT / "params.yaml")
    assert overrides == {"finetune.max_steps": None, "finetune.target_modules": ["q_proj", "v_proj"], "evaluate.limit": 200}
    assert set_param_args(overrides) == ["-S", "finetune.max_steps=null", "-S", "finetune.target_modules=[q_proj, v_proj]", "-S", "evaluate.limit=200"]
    assert flatten({"a": {"b": {"c": 1}, "d": [1]}}) == {"a.b.c": 1, "a.d": [1]}
    assert apply_overrides({"a": {"b": 1}}, {"a.b": 2}, "p") == {"a": {"b": 2}}


@pytest.mark.parametrize(
    ("tree", "fragment"),
    [
        ({"finetune": {"lora_rr": 4}}, "finetune.lora_rr is not in params.yaml"),
        ({"finetunes": {"epochs": 2}}, "finetunes is not a section of params.yaml; fix the key finetunes.epochs"),
        ({"finetune": {"epochs": {"x": 1}}}, "finetune.epochs is not a section"),
        ({"evaluate": {"limit": 0}}, "evaluate.limit"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_preset_is_one_line_naming_the_file_and_key(tmp_path, tree, fragment):
    preset = write_preset(tmp_path / "bad.yaml", tree)
    with pytest.raises(InputError) as err:
        load_preset(preset, ROOT / "params.yaml")
    assert fragment in str(err.value) and str(preset) in str(err.value) and "\n" not in str(err.value)


def test_bad_preset_exits_non_zero_before_any_experiment(tmp_path):
    preset = write_preset(tmp_path / "bad.yaml", {"finetune": {"lora_rr": 4}})
    result = subprocess.run([sys.executable, str(ROOT / "scripts/paper.py"), "--preset", str(preset)], capture_output=True, text=True)
    assert result.returncode == 1 and "$ dvc" not in result.stdout
    assert result.stderr.strip().count("\n") == 0 and "finetune.lora_rr" in result.stderr


def test_reply_stats_and_summary_line():
    assert reply_stats(["How are you?", "I am sorry to hear that", "Tell me? More?"]) == {"mean_words": 4.0, "question_share": 0.6667}
    base = [{"er": 0.5, "ip": 0.2, "ex": 0.1, "empathy": 0.2}, {"er": 0.7, "ip": 0.4, "ex": 0.3, "empathy": 0.6}]
    tuned = [{"er": 1.0, "ip": 0.2, "ex": 0.1, "empathy": 0.5}, {"er": 1.2, "ip": 0.4, "ex": 0.3, "empathy": 0.7}]
    metrics = compare_scores(base, tuned, n_samples=200, seed=0)
    assert metrics["empathy"]["std_relative_change"] == pytest.approx((0.1414 - 0.2828) / 0.2828, abs=1e-3)  # spread halved
    line = summary_line(metrics)
    assert "empathy 0.400 -> 0.600 (+50.0%" in line and "std 0.283 -> 0.141 (-50.0%)" in line and "2 situations" in line


def test_human_records_leave_out_evaluation_posts_and_duplicates():
    table = pd.DataFrame(
        {
            "sp_id": ["a", "a", "a", "b"],
            "rp_id": ["r1", "r1", "r2", "r3"],
            "seeker": ["I lost  my job.", "I lost  my job.", "I lost  my job.", "My dog died."],
            "response": ["So sorry.", "So sorry.", "That is hard.", "I am sorry for your loss."],
        }
    )
    records = human_sft_records(table, {"My dog died."})
    assert [r["id"] for r in records] == ["epitome-a-r1", "epitome-a-r2"]
    assert records[0]["messages"] == [{"role": "user", "content": "I lost  my job."}, {"role": "assistant", "content": "So sorry."}]


def test_subsample_is_seeded_stable_and_keeps_order():
    records = [{"id": f"r{i}"} for i in range(50)]
    a, b = subsample(records, 10, seed=1), subsample(records, 10, seed=2)
    assert len(a) == 10 and a == subsample(records, 10, seed=1) and a != b
    assert a == sorted(a, key=lambda r: int(r["id"][1:]))
    assert set(r["id"] for r in a) <= set(r["id"] for r in subsample(records, 11, seed=1))
    assert subsample(records, 60, seed=1) == records


def test_plan_runs_equal_size_per_seed_and_full_size_within_budget():
    runs, skipped = plan_runs({"filtered": 10, "unfiltered": 30, "human": 2000}, [7, 8], lambda n: n // 2, max_full_size=100)
    equal = [r for r in runs if r.comparison == "equal size"]
    assert len(equal) == 6 and {(r.size, r.steps) for r in equal} == {(10, 5)} and {r.seed for r in equal} == {7, 8}
    assert [r for r in runs if r.comparison == "full size"] == [Run("unfiltered", "full size", 30, 15, 7)]
    assert len(skipped) == 1 and "human" in skipped[0] and "2000 pairs" in skipped[0]


def test_markdown_table_has_the_base_row_and_one_row_per_set():
    metrics = compare_scores([{"er": 1.0, "ip": 0.5, "ex": 0.0, "empathy": 0.5}] * 2, [{"er": 1.5, "ip": 0.5, "ex": 0.1, "empathy": 0.7}] * 2, 100, 0)
    replies = {"mean_words": 30.0, "question_share": 0.5}
    results = [{**Run(s, "equal size", 4, 2, seed).__dict__, "metrics": metrics, "replies": replies} for s in ("filtered", "human") for seed in (1, 2)]
    rows = summarise(results)
    assert [(r["source"], r["seeds"]) for r in rows] == [("filtered", [1, 2]), ("human", [1, 2])]
    table = markdown_table({"metrics": metrics, "replies": replies}, rows).splitlines()
    assert len(table) == 2 + 1 + 2 and table[2].startswith("| base model") and "+40.0%, +40.0%" in table[3]


def test_paper_preset_then_ablation_as_dvc_experiments(reproduced, tmp_path):
    """make paper's script runs the preset as a named DVC experiment in the workspace; the ablation
    script then trains every set with the same recipe: its run on the whole filtered corpus with
    the preset's seed is make paper's own run (same adapter, same tuned scores)."""
    repo = tmp_path / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    write_preset(repo / "tiny-paper.yaml", {"finetune": {"max_steps": 2, "batch_size": 2}, "evaluate": {"limit": 3}})
    paper = run([sys.executable, "scripts/paper.py", "--preset", "tiny-paper.yaml", "--name", "tiny-paper"], repo)
    assert paper.returncode == 0, paper.stdout[-3000:] + paper.stderr[-3000:]
    finetune = json.loads((repo / "metrics/finetune.json").read_text())
    assert finetune["n"] == 3 and "replies" in finetune and json.loads((repo / "metrics/finetune_train.json").read_text())["steps"] == 2
    assert summary_line(finetune) in paper.stdout
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "tiny-paper" in json.dumps(shown)

    paper_params = (repo / "params.yaml").read_text()
    ablation = run([sys.executable, "scripts/ablation.py", "--preset", "tiny-paper.yaml", "--seeds", "2", "--max-full-size", "100"], repo)
    assert ablation.returncode == 0, ablation.stdout[-3000:] + ablation.stderr[-3000:]
    result = json.loads((repo / "metrics/ablation.json").read_text())
    runs = result["runs"]
    equal = [r for r in runs if r["comparison"] == "equal size"]
    assert sorted({r["source"] for r in equal}) == ["filtered", "human", "unfiltered"] and len(equal) == 6
    assert len({r["size"] for r in equal}) == 1 and all(r["steps"] == 2 for r in runs)
    assert any("human at full size" in line for line in result["left_out"])  # EPITOME has thousands of pairs
    n_filtered = len((repo / "data/corpus/sft.jsonl").read_text().splitlines())
    own = next(r for r in equal if r["source"] == "filtered" and r["seed"] == PARAMS["finetune"]["seed"])
    if own["size"] == n_filtered:  # the filtered corpus is the smallest set: this run is make paper's
        assert own["metrics"]["empathy"]["tuned_mean"] == finetune["empathy"]["tuned_mean"]
        assert own["metrics"]["empathy"]["base_mean"] == finetune["empathy"]["base_mean"]
    table = (repo / "metrics/ablation.md").read_text()
    assert table in ablation.stdout and "human EPITOME responses" in table and "| base model" in table
    assert (repo / "params.yaml").read_text() == paper_params  # the workspace is make paper's again

    again = run([sys.executable, "scripts/ablation.py", "--preset", "tiny-paper.yaml", "--seeds", "2", "--max-full-size", "100"], repo)
    assert again.returncode == 0 and again.stderr.count("finished earlier") == 1 + len(runs)  # the base and every run: nothing redone
    assert json.loads((repo / "metrics/ablation.json").read_text())["runs"] == runs
