"""The brainstorm sampling grid search, minus the DVC calls: naming, parsing, ranking, the table.

scripts/sampling_search.py runs one DVC experiment per (temperature, top_p); this module turns
``dvc exp show --json`` into trials and applies the rule: the highest ``objective`` among trials
that keep their coherence (at least the bar of ``coherence_bar``); if none qualifies, the most
coherent one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

PARAMS_FILE = "params.yaml"
METRICS_FILE = "metrics/corpus.json"
METRICS_KEY = "sampling"
# Columns of the table after temperature and top_p, in order: the headline scores, then parts.
COLUMNS = ("diversity", "coherence", "distinct_2", "self_bleu", "on_topic", "survival", "repetition")
# Columns of the grid plot's data (metrics/plots/sampling_grid.json, dvc plots `sampling_grid`).
GRID_PLOT_COLUMNS = ("setting", "temperature", "top_p", "diversity", "coherence", "coherence_bar", "status", "experiment")


@dataclass(frozen=True)
class Trial:
    name: str
    temperature: float
    top_p: float
    scores: dict | None  # metrics/corpus.json:sampling; None when the experiment failed

    def score(self, key: str) -> float:
        return self.scores[key] if self.scores else float("nan")


def experiment_name(temperature: float, top_p: float) -> str:
    """One name per grid point, so a rerun replaces it (dvc exp remove, then run) instead of piling up."""
    return f"brainstorm-t{temperature:g}-p{top_p:g}"


def _experiments(doc: Sequence[dict]) -> Iterator[dict]:
    """Every experiment entry of every baseline in a ``dvc exp show --json`` document."""
    for baseline in doc:
        for group in baseline.get("experiments") or []:
            yield from group.get("revs") or []


def _file_data(data: dict, kind: str, path: str) -> dict:
    return ((data.get(kind) or {}).get(path) or {}).get("data") or {}


def parse_exp_show(doc: Sequence[dict], names: Sequence[str]) -> list[Trial]:
    """Trials for the experiments called ``names``, in that order. An experiment that failed, is
    missing, or ran without the sampling scores is a trial with ``scores=None``."""
    found = {exp["name"]: exp for exp in _experiments(doc) if exp.get("name") in names}
    trials = []
    for name in names:
        exp = found.get(name, {})
        data = exp.get("data") or {}
        brainstorm = _file_data(data, "params", PARAMS_FILE).get("brainstorm") or {}
        # A failed run may still show metrics from the stages it finished: they are no result.
        scores = None if exp.get("error") else _file_data(data, "metrics", METRICS_FILE).get(METRICS_KEY)
        trials.append(Trial(name, brainstorm.get("temperature", float("nan")), brainstorm.get("top_p", float("nan")), scores))
    return trials


def coherence_bar(trials: Sequence[Trial], min_coherence: float, max_coherence_drop: float) -> float:
    """The coherence a setting must keep to be picked: within ``max_coherence_drop`` of the grid's
    most coherent setting, and never below ``min_coherence``. Relative, because absolute coherence
    is the model's: a 135M model and Mistral-7B stay on topic at very different rates."""
    scored = [t.score("coherence") for t in trials if t.scores is not None]
    return max(min_coherence, max(scored) - max_coherence_drop) if scored else min_coherence


def qualifies(trial: Trial, bar: float) -> bool:
    return trial.scores is not None and trial.score("coherence") >= bar


def rank(trials: Sequence[Trial], objective: str, bar: float) -> list[Trial]:
    """Best first: qualifying trials by ``objective``, then the rest by coherence, then failures.
    Ties go to the cooler setting (lower temperature, then lower top_p), the safer choice, so the
    order never depends on the order the experiments ran in."""

    def key(t: Trial) -> tuple:
        if t.scores is None:
            return (2, t.name)  # failed: params may be missing
        if qualifies(t, bar):
            return (0, -t.score(objective), -t.score("coherence"), t.temperature, t.top_p, t.name)
        return (1, -t.score("coherence"), -t.score(objective), t.temperature, t.top_p, t.name)

    return sorted(trials, key=key)


def verdict(ranked: Sequence[Trial], objective: str, bar: float) -> str:
    """One line naming the pick of a ranked list and why it was picked."""
    if not ranked or ranked[0].scores is None:
        return "No pick: every experiment failed (see `dvc queue logs <name>`)."
    best = ranked[0]
    setting = f"brainstorm.temperature={best.temperature:g} brainstorm.top_p={best.top_p:g} ({best.name})"
    if qualifies(best, bar):
        return f"Pick: {setting}: highest {objective} ({best.score(objective):.4f}) with coherence {best.score('coherence'):.4f} >= bar {bar:.4f}."
    return f"No setting reaches coherence >= {bar:.4f}; the most coherent is {setting}, coherence {best.score('coherence'):.4f}."


def grid_plot_rows(ranked: Sequence[Trial], bar: float) -> list[dict]:
    """The scored settings in grid order (temperature, then top_p): diversity, coherence, the bar
    and the status, "pick" (the first of ``ranked``), "qualifies" or "below the bar"."""
    rows = []
    for i, t in enumerate(ranked):
        if t.scores is None:
            continue
        status = "pick" if i == 0 else "qualifies" if qualifies(t, bar) else "below the bar"
        rows.append(
            {
                "setting": f"t{t.temperature:g} p{t.top_p:g}",
                "temperature": t.temperature,
                "top_p": t.top_p,
                "diversity": t.score("diversity"),
                "coherence": t.score("coherence"),
                "coherence_bar": round(bar, 4),
                "status": status,
                "experiment": t.name,
            }
        )
    return sorted(rows, key=lambda r: (r["temperature"], r["top_p"]))


def markdown_table(ranked: Sequence[Trial], objective: str, bar: float) -> str:
    """The ranked trials as a Markdown table (the pick is the first row), then the verdict."""
    shown = COLUMNS if objective in COLUMNS else (objective, *COLUMNS)
    columns = ("temperature", "top_p", *shown, "qualifies", "experiment")
    lines = [
        f"Brainstorm sampling grid search: objective `{objective}`, coherence bar {bar:.4f} "
        "(the larger of `min_coherence` and the best coherence minus `max_coherence_drop`), best first.",
        "",
        "| rank | " + " | ".join(columns) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for i, t in enumerate(ranked, start=1):
        scores = [f"{t.score(c):.4f}" if t.scores else "failed" for c in shown]
        cells = [str(i), f"{t.temperature:g}", f"{t.top_p:g}", *scores, "yes" if qualifies(t, bar) else "no", t.name]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", verdict(ranked, objective, bar), ""])
