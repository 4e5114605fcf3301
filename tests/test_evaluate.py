"""Paired bootstrap on synthetic scores, situation files, score comparison, batched generation."""

import json

import numpy as np
import pytest

from synthempathy.errors import InputError
from synthempathy.evaluate import compare_scores, generate_responses, paired_bootstrap_ci, read_situations, side_by_side
from synthempathy.finetune import load_base, select_device
from synthempathy.params import EvaluateParams

EVAL = EvaluateParams(
    situations="unused.jsonl",
    text_column="text",
    limit=None,
    max_new_tokens=8,
    batch_size=3,
    temperature=0.0,
    top_p=1.0,
    repetition_penalty=1.2,
    bootstrap_samples=2000,
)


def test_bootstrap_ci_contains_a_known_difference_and_excludes_zero():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.3, size=300)
    tuned = base + 0.2 + rng.normal(0, 0.2, size=300)
    low, high = paired_bootstrap_ci(base, tuned, n_samples=5000, seed=1)
    assert low < 0.2 < high and low > 0
    assert high - low < 0.1  # pairing removes the between-situation spread
    assert (low, high) == paired_bootstrap_ci(base, tuned, n_samples=5000, seed=1)


def test_bootstrap_ci_contains_zero_without_a_difference():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.3, size=300)
    noise = rng.normal(0, 0.2, size=300)
    low, high = paired_bootstrap_ci(base, base + noise - noise.mean(), n_samples=5000, seed=1)
    assert low < 0 < high


def test_compare_scores_reports_each_mechanism():
    base = [{"er": 0.5, "ip": 0.2, "ex": 0.1, "empathy": 0.2667}, {"er": 0.7, "ip": 0.4, "ex": 0.3, "empathy": 0.4667}]
    tuned = [{"er": 1.0, "ip": 0.2, "ex": 0.1, "empathy": 0.4333}, {"er": 1.2, "ip": 0.4, "ex": 0.3, "empathy": 0.6333}]
    result = compare_scores(base, tuned, n_samples=200, seed=0)
    assert result["n"] == 2
    assert result["er"]["base_mean"] == 0.6 and result["er"]["tuned_mean"] == 1.1 and result["er"]["difference_ci"] == [0.5, 0.5]
    assert result["er"]["relative_change"] == pytest.approx(0.8333, abs=1e-4)
    assert result["ip"]["difference"] == 0 and result["ip"]["base_std"] == pytest.approx(0.1414, abs=1e-4)
    json.dumps(result)  # plain JSON types only
    rows = side_by_side([{"id": "a", "text": "s"}, {"id": "b", "text": "t"}], ["x", "y"], ["X", "Y"], base, tuned)
    assert rows[1] == {"id": "b", "situation": "t", "base_response": "y", "tuned_response": "Y", "base_scores": base[1], "tuned_scores": tuned[1]}


def test_read_situations_from_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "heldout.jsonl"
    jsonl.write_text(
        "".join(json.dumps(r) + "\n" for r in [{"id": "a", "text": "I lost my job."}, {"id": "b", "text": " "}, {"id": "c", "text": "My dog  died."}])
    )
    assert read_situations(jsonl, "text") == [{"id": "a", "text": "I lost my job."}, {"id": "c", "text": "My dog died."}]
    assert read_situations(jsonl, "text", limit=1) == [{"id": "a", "text": "I lost my job."}]
    csv = tmp_path / "posts.csv"
    csv.write_text('post,other\n"I can\'t sleep, exams are close.",x\n')
    assert read_situations(csv, "post") == [{"id": "posts-1", "text": "I can't sleep, exams are close."}]
    with pytest.raises(InputError, match="no column 'text'"):
        read_situations(csv, "text")
    with pytest.raises(InputError, match="expected a .jsonl or .csv"):
        read_situations(tmp_path / "posts.txt", "text")


def test_batched_left_padded_generation_matches_one_at_a_time():
    model, tokenizer = load_base("default", select_device("cpu", 1))
    situations = ["I failed my exam.", "My best friend moved to another country and I feel alone every evening.", "Work is stressful."]
    batched = generate_responses(model, tokenizer, situations, EVAL, seed=0, desc="batched")
    single = generate_responses(model, tokenizer, situations, EVAL.model_copy(update={"batch_size": 1}), seed=0, desc="single")
    assert batched == single and all(batched)
