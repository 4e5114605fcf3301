"""Params presets run as DVC experiments (`make paper`), and the dvc calls the scripts share.

A preset is a YAML file shaped like params.yaml holding only the keys it changes. It is
checked against params.yaml (every key must exist there, every value must validate) before
anything runs, and handed to `dvc exp run` as ``-S key=value`` flags, so the experiment, its
params and its metrics are DVC's own (`dvc exp show`, `dvc metrics diff`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from synthempathy.errors import InputError
from synthempathy.params import PARAMS_FILE, read_yaml, validate_params
from synthempathy.paths import cache_root


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def apply_overrides(tree: Mapping[str, Any], overrides: Mapping[str, Any], source: str | Path) -> dict[str, Any]:
    """A copy of ``tree`` with each dotted key of ``overrides`` set; a key that is not in ``tree``
    is an InputError naming ``source`` (a preset only changes params, it never adds one)."""
    result = yaml.safe_load(yaml.safe_dump(dict(tree)))  # deep copy of plain YAML data
    for dotted, value in overrides.items():
        node = result
        *parents, leaf = dotted.split(".")
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise InputError(f"{source}: {'.'.join(parents[: i + 1])} is not a section of {PARAMS_FILE}; fix the key {dotted}")
            node = node[part]
        if leaf not in node:
            raise InputError(f"{source}: {dotted} is not in {PARAMS_FILE}; fix its spelling (a preset can only change existing params)")
        node[leaf] = value
    return result


def load_preset(path: str | Path, params_file: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The preset's overrides as ``{dotted key: value}``, after checking that params.yaml with
    them applied is valid; one-line InputError otherwise."""
    path = Path(path)
    tree = read_yaml(path, "preset file not found; pass an existing file (e.g. presets/paper.yaml)")
    if not isinstance(tree, dict) or not tree:
        raise InputError(f"{path}: expected a mapping of params.yaml sections to the values it changes")
    overrides = flatten(tree)
    params = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
    validate_params(apply_overrides(params, overrides, path), path)
    return overrides


def set_param_args(overrides: Mapping[str, Any]) -> list[str]:
    """``dvc exp run`` flags for ``overrides``: values in YAML flow style, as DVC parses them."""
    args: list[str] = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix('...').strip()}"]
    return args


def dvc_env() -> dict[str, str]:
    """Experiments may run in temp copies of the repo (.dvc/tmp/exps): an absolute cache path lets
    them share LLM completions and embeddings with each other and with the workspace. The stages
    call `python` and the queue worker is spawned as `dvc`: this interpreter's bin goes first on PATH."""
    return {
        **os.environ,
        "SYNTHEMPATHY_CACHE": str(cache_root().resolve()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def dvc(args: Sequence[str], env: Mapping[str, str], check: bool = True, quiet: bool = False, capture: bool = False) -> str | None:
    """Run dvc, echoing the command; ``quiet`` hides it and its output (housekeeping that may
    fail); ``capture`` returns its stdout instead of printing it."""
    if not quiet:
        print("$ dvc " + " ".join(args), flush=True)
    stdout = subprocess.PIPE if quiet or capture else None
    stderr = subprocess.DEVNULL if quiet else None
    return subprocess.run(["dvc", *args], env=dict(env), check=check, text=True, stdout=stdout, stderr=stderr).stdout
