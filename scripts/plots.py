"""`dvc plots show` / `dvc plots diff` with vega inlined in the page, for machines without network.

    python scripts/plots.py show [DVC OPTIONS]                  (= make plots)
    python scripts/plots.py diff [REVISIONS] [DVC OPTIONS]      e.g. diff brainstorm-t1.1-p0.9

Writes the offline page template (synthempathy/plots_html.py) to .dvc/tmp/plots/offline.html and
runs `dvc plots show|diff --html-template` with it; then open dvc_plots/index.html (or `-o DIR`).
With network, plain `dvc plots show` does the same with vega from a CDN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: import the package from this checkout

from synthempathy.plots_html import write_template  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("show", "diff"):
        sys.exit(__doc__)
    os.chdir(ROOT)
    template = write_template()
    return subprocess.run(["dvc", "plots", sys.argv[1], "--html-template", str(template), *sys.argv[2:]]).returncode


if __name__ == "__main__":
    sys.exit(main())
