"""Helpers shared by the test modules (fixtures live in conftest.py)."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from synthempathy.params import ModelParams

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# The embedded SmolLM2-135M with a small context and one thread: fast, and the same numerics everywhere.
TINY_MODEL = ModelParams(path="default", n_ctx=512, n_threads=1, n_gpu_layers=0, chat_format=None)


class CrashAfter:
    """Wraps a backend and dies after ``n`` completions in all (over every call), as a killed
    process would; ``calls`` lists the request ids of each call it received."""

    def __init__(self, inner, n):
        self.inner, self.left, self.calls = inner, n, []

    @property
    def seen(self):
        return [request_id for call in self.calls for request_id in call]

    def generate(self, requests):
        self.calls.append([r.id for r in requests])
        for completion in self.inner.generate(requests):
            if self.left == 0:
                raise KeyboardInterrupt("killed")
            self.left -= 1
            yield completion


# Small enough for minutes on 2 cores; every section that exists in params.yaml gets its keys.
TINY = {
    "model": {"n_threads": 1, "n_ctx": 1024},
    "generation": {"checks": False},  # 48-token stories would all fail the truncation check; tests/test_generation.py covers resampling
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


def repo_env(repo: Path) -> dict:
    """The environment of a command in a temp repo: the venv first on PATH, the repo's own caches."""
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "SYNTHEMPATHY_CACHE": str(Path(repo) / ".cache")}


def run(cmd, cwd, **kwargs):
    return subprocess.run(cmd, cwd=cwd, env=repo_env(cwd), capture_output=True, text=True, **kwargs)


def stage_argv(stage: str) -> list[str]:
    """The --options that dvc.yaml's cmd passes to a stage (its file paths), to call ``main`` directly."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", f"stages.{stage}"], cmd
    return argv[3:]
