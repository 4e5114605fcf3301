"""Where caches and run logs live. They sit outside DVC outputs (DVC deletes outputs before a stage runs).

``SYNTHEMPATHY_CACHE`` points every cache at one folder, so DVC experiments that run in
temporary copies of the repo (``dvc exp run --queue``) share completions and embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def cache_root() -> Path:
    return Path(os.environ.get("SYNTHEMPATHY_CACHE", ".cache"))


def log_path(stage: str) -> Path:
    """A stage's run log (timings, engine, machine facts): untracked, since such numbers would
    break the byte-identical rebuild of DVC outputs and metrics."""
    return Path("logs") / f"{stage}.json"


def stage_path(stage: str, option: str, dvc_yaml: str | Path = "dvc.yaml") -> str:
    """The path dvc.yaml's ``stage`` passes as ``--option`` in its cmd: tools outside ``dvc repro``
    (make paper, make ablation, make scorer-cv) read a stage's files from there, never restate them."""
    words = yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"][stage]["cmd"].split()
    return words[words.index(f"--{option}") + 1]


def locked_md5s(stage: str, lock: str | Path = "dvc.lock") -> dict[str, str]:
    """md5 of each output of ``stage`` as dvc.lock records it, by path."""
    return {out["path"]: out["md5"] for out in yaml.safe_load(Path(lock).read_text(encoding="utf-8"))["stages"][stage]["outs"]}
