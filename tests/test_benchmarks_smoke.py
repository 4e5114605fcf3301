"""`python -m benchmarks.run --smoke` (the CI variant of `make bench`) runs every benchmark and
prints each comparison; timings are the benchmarks' business, never asserted here."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_smoke_runs_and_prints_the_ratios():
    run = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    out = run.stdout
    assert "batch 1: pipeline" in out and "ratio" in out and "(goal >= 0.95)" in out
    assert "batch 2: pipeline" in out and "(goal >= 0.85)" in out
    assert "dedup:" in out and "agrees: True" in out
    assert "projection:" in out
    assert "ray batch 1: local" in out and "(goal >= 0.9)" in out  # make test installs Ray (setup-ray)
    assert "| shard_batches |" in out and "expected redo" in out
    assert "server openai engine, concurrency 2:" in out and "ratio to local" in out and "requests/s at concurrency 2" in out  # make test builds llama-server
    assert "server determinism: one at a time, twice; cache_prompt=false: same text" in out
    assert "pii new:" in out and "pii old regexes:" in out and "speed ratio" in out
    assert "scorer EPITOME length:" in out and "scorer corpus length:" in out and "ratio" in out
    assert "wrote " not in out  # smoke runs leave benchmarks/results alone
