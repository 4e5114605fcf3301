"""Run every benchmark, each in its own process (so one's memory never inflates another's):

    python -m benchmarks.run            # full runs, results in benchmarks/results/ (make bench)
    python -m benchmarks.run --smoke    # seconds-long variants, nothing written (CI)

Exits non-zero if any benchmark fails; timings never fail a run, they are reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

# In order: the projection reads bench_generation's results. bench_align is another team's and
# may be absent. bench_ray skips itself when Ray is not installed (make setup-ray); bench_server
# and bench_server_determinism need llama-server (make llama-tools).
BENCHMARKS = (
    "bench_generation",
    "bench_dedup",
    "bench_projection",
    "bench_align",
    "bench_ray",
    "bench_shards",
    "bench_pii",
    "bench_scorer",
    "bench_server",
    "bench_server_determinism",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    failed = []
    for name in BENCHMARKS:
        module = f"benchmarks.{name}"
        if importlib.util.find_spec(module) is None:
            print(f"== {module}: not present, skipped", flush=True)
            continue
        print(f"== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module, *(["--smoke"] if args.smoke else [])]).returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
