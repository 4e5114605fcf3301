"""The paper's claim from one command (`make paper`): a params preset run as a DVC experiment.

    python scripts/paper.py [--preset presets/paper.yaml] [--name NAME]

Checks the preset against params.yaml, then runs `dvc exp run -S ...` in the workspace: the
corpus, LoRA on the filtered corpus, base vs tuned on the held-out situations. The workspace
keeps the experiment's params and outputs (metrics/finetune.json: the gain, its paired-bootstrap
CI, the per-mechanism means and spreads); `dvc exp show` lists it beside the others, and
`git checkout params.yaml dvc.lock && dvc checkout` returns to the committed default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: import the package from this checkout

from synthempathy.errors import InputError  # noqa: E402
from synthempathy.evaluate import summary_line  # noqa: E402
from synthempathy.experiments import dvc, dvc_env, load_preset, set_param_args  # noqa: E402
from synthempathy.paths import stage_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="presets/paper.yaml", help="params preset (YAML shaped like params.yaml)")
    parser.add_argument("--name", help="experiment name (dvc exp run --name); default: DVC's")
    args = parser.parse_args()
    os.chdir(ROOT)
    try:
        overrides = load_preset(args.preset)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    name = ["--name", args.name] if args.name else []
    try:
        dvc(["exp", "run", *name, *set_param_args(overrides)], dvc_env())
    except subprocess.CalledProcessError as exc:
        return exc.returncode  # dvc printed why
    corpus = json.loads(Path(stage_path("report", "metrics")).read_text(encoding="utf-8"))
    finetune = stage_path("evaluate", "metrics")
    print(f"corpus: {corpus['funnel']['final']} final pairs; {summary_line(json.loads(Path(finetune).read_text(encoding='utf-8')))} ({finetune})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
