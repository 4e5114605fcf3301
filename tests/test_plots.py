"""Data of the `dvc plots` (synthempathy/plots.py, the sampling grid, the offline page template).
The plots rendered in a real browser from a real pipeline run are in test_plots_browser.py."""

import csv
import json

import pytest

from synthempathy.plots import base_vs_tuned_rows, category_rows, empathy_histogram, funnel_rows, rejection_rows, write_plot
from synthempathy.plots_html import page_template
from synthempathy.report import LENGTH_COLUMNS, PAPER, length_histogram
from synthempathy.sampling_search import COLUMNS, GRID_PLOT_COLUMNS, Trial, grid_plot_rows, rank


def test_funnel_keeps_pipeline_order():
    assert funnel_rows({"scenarios": 9, "stories": 18, "final": 4}) == [
        {"step": "scenarios", "records": 9},
        {"step": "stories", "records": 18},
        {"step": "final", "records": 4},
    ]


def test_rejections_are_counted_per_stage_and_reason_most_frequent_first():
    rejected = (
        [{"stage": "filter", "reason": "truncated"}] * 2
        + [{"stage": "align", "reason": "near_duplicate"}, {"stage": "align", "reason": "off_topic_explanation"}] * 2
        + [{"stage": "dedup", "reason": "exact_duplicate"}]
    )
    assert [(r["rejection"], r["records"]) for r in rejection_rows(rejected)] == [
        ("align: near_duplicate", 2),
        ("align: off_topic_explanation", 2),
        ("filter: truncated", 2),
        ("dedup: exact_duplicate", 1),
    ]
    assert rejection_rows([]) == []


def test_categories_compare_scenarios_asked_for_with_pairs_kept():
    scenarios = [{"category": "Work"}, {"category": "School"}, {"category": "Work"}]
    corpus = [{"category": "Work"}]
    assert category_rows(scenarios, corpus) == [{"category": "School", "scenarios": 1, "pairs": 0}, {"category": "Work", "scenarios": 2, "pairs": 1}]


def test_empathy_histogram_bins_every_mechanism_over_the_whole_scale():
    corpus = [{"er": 0.0, "ip": 0.3, "ex": 2.0, "empathy": 0.7667}, {"er": 1.05, "ip": 0.29999, "ex": 1.99, "empathy": 1.0}]
    rows = empathy_histogram(corpus)
    assert [r["score"] for r in rows] == [round(0.1 * b, 4) for b in range(20)]  # 0.0 ... 1.9, always all bins
    by_score = {r["score"]: r for r in rows}
    assert by_score[0.0]["er"] == 1 and by_score[1.0]["er"] == 1
    assert by_score[0.3]["ip"] == 1 and by_score[0.2]["ip"] == 1  # 0.3 / 0.1 is 2.9999... in floats: still bin 0.3
    assert by_score[1.9]["ex"] == 2  # the top score 2.0 lands in the last bin
    assert by_score[0.7]["empathy"] == 1 and by_score[1.0]["empathy"] == 1
    assert sum(r[f] for r in rows for f in ("er", "ip", "ex", "empathy")) == 8


def test_length_histogram_carries_the_paper_means_and_reaches_past_them():
    rows = length_histogram([{"explanation": "word " * 25, "response": "word " * 12}])
    assert {r["paper_explanations_mean"] for r in rows} == {PAPER["explanation_words_mean"]}
    assert {r["paper_responses_mean"] for r in rows} == {PAPER["response_words_mean"]}
    assert rows[-1]["words"] == 150 and rows[2]["explanations"] == 1 and rows[1]["responses"] == 1  # 153.7 -> bin 150
    assert list(rows[0]) == list(LENGTH_COLUMNS)


def test_base_vs_tuned_rows_follow_the_metrics():
    metrics = {m: {"base_mean": 0.4, "tuned_mean": 0.5, "difference": 0.1, "difference_ci": [-0.02, 0.21]} for m in ("er", "empathy")}
    assert base_vs_tuned_rows(metrics, ("er", "empathy")) == [
        {"mechanism": m, "base": 0.4, "tuned": 0.5, "difference": 0.1, "ci_low": -0.02, "ci_high": 0.21} for m in ("er", "empathy")
    ]


def test_sampling_grid_marks_the_pick_and_the_bar_in_grid_order():
    def trial(name, t, p, diversity, coherence):
        return Trial(name, t, p, {**dict.fromkeys(COLUMNS, 0.5), "diversity": diversity, "coherence": coherence})

    trials = [trial("hot", 1.1, 1.0, 0.9, 0.3), trial("warm", 0.9, 0.9, 0.6, 0.7), trial("cool", 0.7, 0.9, 0.4, 0.8), Trial("failed", 0.8, 0.9, None)]
    rows = grid_plot_rows(rank(trials, "diversity", 0.6), 0.6)
    assert [(r["setting"], r["status"]) for r in rows] == [("t0.7 p0.9", "qualifies"), ("t0.9 p0.9", "pick"), ("t1.1 p1", "below the bar")]
    assert {r["coherence_bar"] for r in rows} == {0.6} and all(list(r) == list(GRID_PLOT_COLUMNS) for r in rows)


def test_write_plot_csv_and_json(tmp_path):
    rows = [{"step": "scenarios", "records": 9, "extra": "not written"}]
    write_plot(tmp_path / "p.csv", rows, ("step", "records"))
    assert list(csv.DictReader((tmp_path / "p.csv").open())) == [{"step": "scenarios", "records": "9"}]
    write_plot(tmp_path / "p.json", rows, ("step", "records"))
    assert json.loads((tmp_path / "p.json").read_text()) == [{"step": "scenarios", "records": 9}]
    write_plot(tmp_path / "empty.csv", [], ("step", "records"))
    assert (tmp_path / "empty.csv").read_bytes() == b"step,records\r\n"  # a header, so DVC sees the columns


def test_offline_page_inlines_the_bundle_and_leaves_dvc_its_placeholders():
    page = page_template("window.vegaEmbed = function () {};")
    assert "window.vegaEmbed" in page and "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page and "cdn" not in page  # DVC's CDN tags go into {scripts}
    with pytest.raises(ValueError, match="</script"):
        page_template("var s = '</script>';")
