"""The plots as a person sees them: `dvc plots show` and `dvc plots diff <experiment>` on a real
tiny pipeline run (the `reproduced` repo of tests/conftest.py, copied), rendered by headless
Chromium (Debian's `chromium`, installed by `make test`), with vega inlined by the offline page
template; and the review sheet rebuilt to the same bytes.

Without chromium the browser tests skip with a message, except under CI (CI=true), where a
missing browser fails them: CI must not pass without having looked at the plots."""

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import run

from synthempathy.plots_html import write_template

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
DECLARED = [next(iter(p)) for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]]
# A cheap experiment that changes the corpus: only `filter` and `report` rerun. --temp: in a copy,
# so the workspace keeps the baseline's outputs to compare with.
EXPERIMENT = ["--temp", "--name", "longer-responses", "-S", "filter.min_response_words=40", "report"]

# Put in the page after the vega bundle: wraps vegaEmbed so that every plot's outcome (rendered
# or failed), its drawn data marks, its canvas' painted pixels and the revisions in its data are
# written into <pre id="plot-check"> once all have settled; vega's warnings and errors too.
PROBE = """
<script>
(function () {
  const embed = window.vegaEmbed, pending = [], warnings = [];
  const warn = console.warn.bind(console), error = console.error.bind(console);
  console.warn = (...a) => { warnings.push(a.join(" ")); warn(...a); };
  console.error = (...a) => { warnings.push(a.join(" ")); error(...a); };
  function dataMarks(node, count) {
    if (node.marktype && node.role === "mark" && node.marktype !== "group") count.n += (node.items || []).length;
    for (const item of node.items || []) for (const child of item.items || []) dataMarks(child, count);
    return count.n;
  }
  function painted(canvas) {
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
  }
  window.vegaEmbed = function (el, spec, opts) {
    const revs = [...new Set((spec.data && spec.data.values || []).map(d => d.rev))];
    pending.push(embed(el, spec, opts).then(
      r => {
        const canvas = document.querySelector(el + " canvas"), svg = document.querySelector(el + " svg");
        return {id: el.slice(1), ok: true, revs, marks: dataMarks(r.view.scenegraph().root, {n: 0}),
                canvas_painted: canvas && canvas.width && canvas.height ? painted(canvas) : 0,
                svg_shapes: svg ? svg.querySelectorAll("path, rect, line, circle, text").length : 0};
      },
      e => ({id: el.slice(1), ok: false, revs, error: String(e)})));
  };
  window.addEventListener("load", async () => {
    const plots = await Promise.all(pending);
    const pre = document.createElement("pre");
    pre.id = "plot-check";
    pre.textContent = JSON.stringify({plots, warnings});
    document.body.appendChild(pre);
  });
})();
</script>"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def repo(reproduced, tmp_path_factory):
    """A copy of the reproduced tiny repo with its results committed, as a user commits a corpus
    version before experimenting on it, and the probing page template."""
    copy = tmp_path_factory.mktemp("plots") / "repo"
    shutil.copytree(reproduced, copy, symlinks=True)
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "corpus version"]):
        subprocess.run(cmd, cwd=copy, check=True)
    write_template(copy / "probe.html", head_extra=PROBE)
    return copy


def need_chromium():
    if CHROMIUM is None:
        message = "chromium not found: install Debian's chromium (`make test` does) to render the plots"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def render(repo: Path, args: list[str], out: str) -> dict:
    """`dvc plots ...` into ``out``, then the page in headless Chromium: the probe's report."""
    result = run(["dvc", "plots", *args, "--html-template", "probe.html", "-o", out], repo)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr  # e.g. a template that fails to fill
    page = repo / out / "index.html"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=60000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    match = re.search(r'<pre id="plot-check">(.*?)</pre>', dom, re.S)
    assert match, f"the page never finished rendering: {dom[-2000:]}"
    return json.loads(match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&"))


def assert_all_rendered(report: dict, revs: int) -> None:
    plots = {p["id"]: p for p in report["plots"]}
    assert sorted(plots) == sorted(DECLARED) and len(DECLARED) >= 8
    for name, plot in plots.items():
        assert plot["ok"], f"{name}: {plot.get('error')}"
        assert len(plot["revs"]) == revs, f"{name}: data of {plot['revs']}"
        assert plot["marks"] > 0, f"{name}: no data mark drawn ({plot})"
        assert plot["canvas_painted"] > 0 or plot["svg_shapes"] > 0, f"{name}: blank ({plot})"
    assert report["warnings"] == []


def test_dvc_plots_show_renders_every_declared_plot(repo):
    need_chromium()
    assert_all_rendered(render(repo, ["show"], "shown"), revs=1)


def test_dvc_plots_diff_renders_workspace_and_experiment_side_by_side(repo):
    need_chromium()
    ran = run(["dvc", "exp", "run", *EXPERIMENT], repo)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    report = render(repo, ["diff", "longer-responses"], "diffed")
    assert_all_rendered(report, revs=2)


def test_review_sheet_and_plot_data_rebuild_to_the_same_bytes(repo):
    outputs = ["data/corpus/review.md", "metrics/plots/lengths.csv", "metrics/plots/categories.csv", "metrics/plots/empathy.csv"]
    before = {name: digest(repo / name) for name in outputs}
    again = run(["dvc", "repro", "--force", "--single-item", "report"], repo)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {name: digest(repo / name) for name in outputs} == before
    sheet = (repo / "data/corpus/review.md").read_text()
    assert re.findall(r"^## (\d)\.", sheet, re.M) == ["1", "2", "3", "4", "5"]
    corpus = [json.loads(line) for line in (repo / "data/corpus/synthempathy.jsonl").read_text().splitlines()]
    sample_size = yaml.safe_load((repo / "params.yaml").read_text())["report"]["review_sample"]
    shown = re.findall(r"^### \d+\. (\S+)", sheet.split("\n## 2. ")[0], re.M)
    assert corpus and len(shown) == min(sample_size, len(corpus)) and set(shown) <= {r["id"] for r in corpus}
