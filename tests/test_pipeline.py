"""The real pipeline through `dvc repro`, on the embedded model with tiny params, in a temp copy
of the repo: outputs, a no-op second run, resume after a kill, and one-line input errors."""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Small enough for minutes on 2 cores; every section that exists in params.yaml gets its keys.
TINY = {
    "model": {"n_threads": 1, "n_ctx": 1024},
    "scenarios": {"n_per_category": 1},
    "brainstorm": {"n_stories": 2, "max_tokens": 48},
    "rewrite": {"max_tokens": 160},  # untruncated explanations and responses survive the filter
    "respond": {"max_tokens": 160},
    "align": {"min_scenario_similarity": -1.0, "min_story_similarity": -1.0, "min_response_similarity": -1.0},  # keep pairs flowing
    "filter": {"min_explanation_words": 3, "min_response_words": 3},
    "train_scorer": {"heldout_posts": 20, "max_posts": 200, "cv_folds": 2},
    "finetune": {"max_steps": 2, "batch_size": 2},
    "evaluate": {"limit": 4, "max_new_tokens": 16, "bootstrap_samples": 200},
    "report": {"diversity_sample": 20},
}


def make_repo(dest: Path, overrides: dict = TINY) -> Path:
    """Copy the committed-or-new (not ignored) files into ``dest`` as a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "dvc.lock").unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overrides.items():
        if section in params:
            params[section].update({k: v for k, v in values.items() if k in params[section]})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def run(cmd, cwd, **kwargs):
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "SYNTHEMPATHY_CACHE": str(Path(cwd) / ".cache")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


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
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "SYNTHEMPATHY_CACHE": str(repo / ".cache")}
    proc = subprocess.Popen(["dvc", "repro", "brainstorm"], cwd=repo, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        (lambda repo: (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("n_per_category: 1", "n_per_category: -3")), "scenarios.n_per_category"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, break_it, fragment):
    repo = make_repo(tmp_path)
    break_it(repo)
    result = run([sys.executable, "-m", "stages.scenarios"], repo)
    assert result.returncode == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (repo / "data/scenarios.jsonl").exists()


def test_missing_model_file_is_one_line(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "data/scenarios.jsonl").write_text('{"id":"sad-1","text":"x","category":"Work","severity":1.0}\n')
    params = (repo / "params.yaml").read_text().replace("path: default", "path: models/nope.gguf")
    (repo / "params.yaml").write_text(params)
    result = run([sys.executable, "-m", "stages.brainstorm"], repo)
    assert result.returncode == 2 and "model.path=models/nope.gguf: file not found" in result.stderr
    assert not (repo / "data/stories.jsonl").exists()
