"""The real pipeline through `dvc repro`, on the embedded model with tiny params, in a temp copy
of the repo: outputs, a no-op second run, resume after a kill, and one-line input errors."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_repo, repo_env, run, stage_argv

SAD_HEADER = "sID,sentence,is_stressor,top_label,avg_severity\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# `reproduced` (tests/conftest.py): this module's tiny repo after `dvc repro`, shared with test_plots_browser.


def test_repro_builds_the_corpus(reproduced):
    scenarios = [json.loads(line) for line in (reproduced / "data/scenarios.jsonl").read_text().splitlines()]
    assert len(scenarios) == 9 and len({s["category"] for s in scenarios}) == 9
    stories = [json.loads(line) for line in (reproduced / "data/stories.jsonl").read_text().splitlines()]
    rejected = (reproduced / "data/rejected/brainstorm.jsonl").read_text().splitlines()
    assert len(stories) + len(rejected) == 18
    assert all(s["story"] and s["id"].startswith(s["scenario_id"] + "-s") for s in stories)
    pairs = [json.loads(line) for line in (reproduced / "data/pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["explanation"] and p["response"] for p in pairs)
    report = json.loads((reproduced / "metrics/corpus.json").read_text())
    assert report["funnel"]["scenarios"] == 9 and report["funnel"]["stories"] == len(stories)


def test_second_repro_is_a_no_op(reproduced):
    before = digest(reproduced / "dvc.lock")
    status = run(["dvc", "status", "--json"], reproduced)
    assert status.returncode == 0 and json.loads(status.stdout) == {}
    again = run(["dvc", "repro"], reproduced)
    assert again.returncode == 0 and digest(reproduced / "dvc.lock") == before


def test_killed_brainstorm_resumes_to_identical_outputs(reproduced, tmp_path):
    repo = make_repo(tmp_path)
    cache = repo / ".cache/llm/completions.sqlite3"
    proc = subprocess.Popen(
        ["dvc", "repro", "brainstorm"], cwd=repo, env=repo_env(repo), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a few calls are done, well before the stage ends
        try:
            if sqlite3.connect(cache).execute("SELECT COUNT(*) FROM completions").fetchone()[0] >= 3:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (repo / "data/stories.jsonl").exists()  # no half-written output for DVC to cache
    done_before = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert 3 <= done_before < 18
    resumed = run(["dvc", "repro", "brainstorm"], repo)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert digest(repo / "data/stories.jsonl") == digest(reproduced / "data/stories.jsonl")
    assert json.loads((repo / "logs/brainstorm.json").read_text())["cached"] == done_before


@pytest.mark.parametrize(
    "break_it, fragment",
    [
        (lambda repo: (repo / "data/seeds/SAD_v1.csv").write_bytes(b""), "SAD_v1.csv: file is empty"),
        (lambda repo: (repo / "data/seeds/SAD_v1.csv").unlink(), "SAD_v1.csv: seed file not found"),
        (lambda repo: (repo / "data/seeds/SAD_v1.csv").write_bytes(b"sID,sentence\n1,x\n"), "missing column"),
        (
            lambda repo: (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("n_per_category: 1", "n_per_category: -3")),
            "scenarios.n_per_category",
        ),
        (lambda repo: (repo / "data/seeds/SAD_v1.csv").write_text(SAD_HEADER + "1,calm day,0,Work,1\n"), "SAD_v1.csv: no row with is_stressor == 1"),
        (lambda repo: (repo / "data/seeds/SAD_v1.csv").write_text(SAD_HEADER + "1,rent is due,yes,Work,5\n"), "SAD_v1.csv:2: is_stressor 'yes' is not 0 or 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, break_it, fragment):
    repo = make_repo(tmp_path)
    break_it(repo)
    result = run([sys.executable, "-m", "stages.scenarios", *stage_argv("scenarios")], repo)
    assert result.returncode == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (repo / "data/scenarios.jsonl").exists()


@pytest.mark.parametrize(
    "break_it, fragment",
    [
        (
            lambda repo: (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("path: default", "path: models/nope.gguf")),
            "model.path=models/nope.gguf: file not found",
        ),
        (lambda repo: (repo / "prompts/brainstorm.yaml").write_text("user: |\n  Write a story\n bad: [indent\n"), "prompts/brainstorm.yaml: not valid YAML"),
    ],
)
def test_bad_brainstorm_input_is_one_line_and_writes_nothing(tmp_path, break_it, fragment):
    repo = make_repo(tmp_path)
    (repo / "data/scenarios.jsonl").write_text('{"id":"sad-1","text":"x","category":"Work","severity":1.0}\n')
    break_it(repo)
    result = run([sys.executable, "-m", "stages.brainstorm", *stage_argv("brainstorm")], repo)
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (repo / "data/stories.jsonl").exists()
