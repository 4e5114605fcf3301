"""What every benchmark report states: the machine, what else was running, and the command; and
the options and tables the benchmarks share."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path("benchmarks/results")


def machine() -> str:
    """``lscpu`` model name and core count, RAM, OS and Python."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def busy() -> str:
    """Load average and the processes using CPU over the last second (top's second sample):
    timings on a shared box mean little without both."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    top = subprocess.run(["top", "-b", "-n", "2", "-d", "1", "-w", "512", "-c"], capture_output=True, text=True).stdout
    last = top[top.rfind("PID USER") :].splitlines()[1:]
    mine = {os.getpid(), os.getppid()}
    others = []
    for line in last:
        fields = line.split(None, 11)
        if len(fields) == 12 and int(fields[0]) not in mine and float(fields[8]) >= 5:
            others.append(f"{fields[8]}% {fields[11][:80]}")
    return f"load average {load}; other processes >= 5% CPU: {'; '.join(others[:6]) or 'none'}"


def command() -> str:
    module = Path(sys.argv[0]).with_suffix("").as_posix().replace("/", ".")
    return " ".join(["python -m", module[module.find("benchmarks.") :], *sys.argv[1:]])


def header(title: str, busy_before: str) -> str:
    return (
        f"# {title}\n\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n"
        f"- machine: {machine()}\n"
        f"- command: `{command()}`\n"
        f"- running at the start: {busy_before}\n"
        f"- running at the end: {busy()}\n"
    )


def llm_arguments(doc: str, threads_help: str) -> argparse.Namespace:
    """The options of a generation benchmark: --smoke, --threads, --rounds."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no results file")
    parser.add_argument("--threads", type=int, default=1, help=threads_help)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    return parser.parse_args()


def table(head: str, rows: Sequence[Sequence[str]]) -> str:
    """A markdown table: ``head`` is its header line (``| a | b |``), then one line per row."""
    n = head.count("|") - 1
    return "\n".join([head, "|" + " --- |" * n, *("| " + " | ".join(row) + " |" for row in rows)])


def write_result(name: str, text: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return path
