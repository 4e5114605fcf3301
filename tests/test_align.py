"""Near-duplicate search against a brute-force reference, and alignment with the real model."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import stage_argv
from hypothesis import given, settings
from hypothesis import strategies as st

from synthempathy.align import align_pairs, histogram
from synthempathy.dedup.near_duplicate import NearDuplicateConfig, find_near_duplicates
from synthempathy.embeddings import Embedder
from synthempathy.params import AlignParams

ROOT = Path(__file__).resolve().parents[1]
PARAMS = AlignParams(min_scenario_similarity=0.2, min_story_similarity=0.4, min_response_similarity=0.25, near_duplicate_threshold=0.9)


def brute_force(x, threshold, eligible=None, decimals=4):
    """The n × n reference: same rounding, same greedy order, same tie-break (best, then earliest)."""
    n = len(x)
    sims = np.round((x @ x.T).astype(np.float64), decimals)
    kept = np.ones(n, bool) if eligible is None else eligible.copy()
    dup, sim, nearest = np.full(n, -1), np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        if i:
            nearest[i] = sims[i, :i].max()
        if eligible is not None and not eligible[i]:
            continue
        candidates = [j for j in range(i) if kept[j] and sims[i, j] >= threshold]
        if candidates:
            j = max(candidates, key=lambda j: (sims[i, j], -j))
            dup[i], sim[i], kept[i] = j, sims[i, j], False
    return dup, sim, nearest


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocked_search_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    x = unit_rows(rng, 300, 6)  # low dimension: many pairs near and above the threshold, long chains
    eligible = rng.random(300) > 0.2 if seed == 2 else None
    config = NearDuplicateConfig(threshold=0.9, block_size=37, chunk_size=50)
    found = find_near_duplicates(x, config, eligible=eligible)
    dup, sim, nearest = brute_force(x, 0.9, eligible)
    assert (found.duplicate_of >= 0).sum() > 50
    np.testing.assert_array_equal(found.duplicate_of, dup)
    np.testing.assert_array_equal(found.similarity, sim)
    np.testing.assert_array_equal(found.nearest, nearest)


@settings(max_examples=60, deadline=None, derandomize=True)  # float ties: same examples every run
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 60),
    d=st.integers(2, 5),
    block_size=st.integers(1, 10),
    chunk_size=st.integers(1, 12),
    threshold=st.floats(0.5, 0.99),
    with_mask=st.booleans(),
)
def test_any_blocking_equals_brute_force(seed, n, d, block_size, chunk_size, threshold, with_mask):
    rng = np.random.default_rng(seed)
    x = unit_rows(rng, n, d)
    eligible = rng.random(n) > 0.3 if with_mask else None
    found = find_near_duplicates(x, NearDuplicateConfig(threshold=threshold, block_size=block_size, chunk_size=chunk_size), eligible=eligible)
    dup, sim, nearest = brute_force(x, threshold, eligible)
    np.testing.assert_array_equal(found.duplicate_of, dup)
    np.testing.assert_array_equal(found.similarity, sim)
    np.testing.assert_array_equal(found.nearest, nearest)


def test_chain_keeps_the_third_when_the_middle_was_dropped():
    angle = np.deg2rad([0, 20, 40])  # cos 20° = 0.94 >= 0.9 > cos 40° = 0.77
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    found = find_near_duplicates(x, NearDuplicateConfig(threshold=0.9))
    assert found.duplicate_of.tolist() == [-1, 0, -1]
    assert np.isnan(found.nearest[0]) and found.nearest[2] == pytest.approx(0.9397)


def test_threshold_is_decided_on_rounded_cosines():
    x = np.array([[1.0, 0.0], [0.89996, np.sqrt(1 - 0.89996**2)]], dtype=np.float32)  # rounds to 0.9
    assert find_near_duplicates(x, NearDuplicateConfig(threshold=0.9)).duplicate_of.tolist() == [-1, 0]


def test_empty_input():
    found = find_near_duplicates(np.zeros((0, 4), np.float32), NearDuplicateConfig(threshold=0.9))
    assert found.duplicate_of.size == 0


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return Embedder("default", batch_size=16, cache_dir=tmp_path_factory.mktemp("embeddings"))


def test_planted_paraphrases_are_near_duplicates(embedder):
    texts = [
        "I lost my job today and I have no idea how I am going to pay rent next month.",  # 0
        "My sister and I had a huge fight about our mother's care and now we are not speaking.",  # 1
        "Today I lost my job and I have no idea how I'm going to pay the rent next month.",  # 2 ~ 0
        "I failed my chemistry final even though I studied every night for two weeks.",  # 3
        "My sister and I had a big fight about our mother's care and now we aren't speaking.",  # 4 ~ 1
        "My landlord raised the rent again and my paycheck no longer covers it.",  # 5 same topic as 0
        "The dog next door barks all night, so I cannot sleep before my shifts.",  # 6
    ]
    found = find_near_duplicates(embedder.encode(texts), NearDuplicateConfig(threshold=0.9, block_size=3, chunk_size=2))
    assert found.duplicate_of.tolist() == [-1, -1, 0, -1, 1, -1, -1]


def pair(i, scenario, story, explanation, response):
    return {"id": f"sad-{i}-s0", "scenario_id": f"sad-{i}", "scenario": scenario, "story": story, "explanation": explanation, "response": response}


SCENARIO = "I have so much homework and my exams are next week"
STORY = "Ana is a college junior with three exams next week and a pile of unfinished homework; she studies until 3 a.m. and still feels behind."
EXPLANATION = "I have three exams next week and so much homework left that I study until 3 a.m. every night, and I still feel like I am falling behind."
ON_TOPIC = "That sounds exhausting. Studying until 3 a.m. with three exams coming up would wear anyone down. You are clearly working hard; could you ask a professor for help planning the week?"
OFF_TOPIC = "The recipe needs two cups of flour, a pinch of salt and one egg; bake it at 180 degrees for half an hour."


def test_alignment_drops_off_topic_response_and_keeps_on_topic(embedder):
    pairs = [pair(2, SCENARIO, STORY, EXPLANATION, OFF_TOPIC), pair(1, SCENARIO, STORY, EXPLANATION.replace("3 a.m.", "three in the morning"), ON_TOPIC)]
    result, _ = align_pairs(pairs, embedder.encode, PARAMS)
    assert [r["id"] for r in result.kept] == ["sad-1-s0"]
    kept = result.kept[0]
    assert kept["response_similarity"] >= PARAMS.min_response_similarity
    assert kept["scenario_similarity"] == round(kept["scenario_similarity"], 4)
    (rejected,) = result.rejected
    assert rejected["id"] == "sad-2-s0" and rejected["stage"] == "align" and rejected["reason"] == "off_topic_response"
    assert "response_similarity=" in rejected["detail"]


def fake_embed(vectors):
    """An embed function over a text -> vector table, so reasons can be planted exactly."""
    table = {t: np.asarray(v, np.float64) / np.linalg.norm(v) for t, v in vectors.items()}
    return lambda texts: np.stack([table[t] for t in texts])


def test_each_failure_has_its_own_reason_and_score():
    embed = fake_embed({"S": [1, 0, 0], "T": [1, 0, 0], "E": [1, 0, 0], "E2": [1, 0.01, 0], "X": [0, 1, 0], "R": [1, 0, 0], "Q": [0, 0, 1]})
    pairs = [
        pair(1, "S", "T", "E", "R"),  # kept
        pair(2, "X", "T", "E", "R"),  # scenario off
        pair(3, "S", "X", "E", "R"),  # story off
        pair(4, "S", "T", "E", "Q"),  # response off
        pair(5, "S", "T", "E2", "R"),  # near duplicate of 1
        pair(6, "X", "X", "X", "X"),  # kept: all cosines 1, and X is far from the kept E
    ]
    result, _ = align_pairs(pairs, embed, PARAMS)
    assert {r["id"]: (r["reason"], r["detail"]) for r in result.rejected} == {
        "sad-2-s0": ("off_topic_explanation", "scenario_similarity=0.0000 < min_scenario_similarity=0.2"),
        "sad-3-s0": ("unfaithful_rewrite", "story_similarity=0.0000 < min_story_similarity=0.4"),
        "sad-4-s0": ("off_topic_response", "response_similarity=0.0000 < min_response_similarity=0.25"),
        "sad-5-s0": ("near_duplicate", "explanation cosine 1.0000 to sad-1-s0"),
    }
    assert [r["id"] for r in result.kept] == ["sad-1-s0", "sad-6-s0"]
    assert result.metrics()["records_in"] == 6 and result.metrics()["records_out"] == 2
    assert result.metrics()["rejected"] == {"off_topic_explanation": 1, "unfaithful_rewrite": 1, "off_topic_response": 1, "near_duplicate": 1}


def test_rejected_pairs_cannot_absorb_later_duplicates():
    embed = fake_embed({"S": [1, 0], "E": [1, 0], "Q": [0, 1]})
    result, _ = align_pairs([pair(1, "S", "S", "E", "Q"), pair(2, "S", "S", "E", "E")], embed, PARAMS)
    assert [r["id"] for r in result.kept] == ["sad-2-s0"]


def test_histogram_counts_every_pair_before_thresholding():
    values = {"scenario": np.array([-1.0, 0.0, 0.01, 1.0]), "nearest_explanation": np.array([np.nan, 0.5, 0.5, 0.99])}
    rows = histogram(values)
    assert len(rows) == 100 and rows[0]["similarity"] == -1.0 and rows[-1]["similarity"] == 0.98
    assert sum(r["scenario"] for r in rows) == 4 and sum(r["nearest_explanation"] for r in rows) == 3
    assert rows[-1]["scenario"] == 1 and rows[-1]["nearest_explanation"] == 1


def test_stage_writes_outputs_and_reports_bad_input(tmp_path, monkeypatch, capsys):
    from stages import align as stage

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHEMPATHY_CACHE", raising=False)  # embeddings cached under tmp_path/.cache
    (tmp_path / "data").mkdir()
    pairs = [pair(1, SCENARIO, STORY, EXPLANATION, ON_TOPIC), pair(2, SCENARIO, STORY, EXPLANATION, OFF_TOPIC)]
    (tmp_path / "data/pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    stage.main(stage_argv("align"))
    assert [json.loads(line)["id"] for line in open("data/aligned.jsonl")] == ["sad-1-s0"]
    assert json.loads(open("data/rejected/align.jsonl").readline())["reason"] == "off_topic_response"
    assert json.loads(open("metrics/align.json").read())["records_out"] == 1
    header, *rows = open("metrics/plots/similarity.csv").read().splitlines()
    assert header == "similarity,scenario,story,response,nearest_explanation" and len(rows) == 100

    del pairs[0]["response"]
    (tmp_path / "data/pairs.jsonl").write_text(json.dumps(pairs[0]) + "\n")
    with pytest.raises(SystemExit) as exit_:
        stage.main(stage_argv("align"))
    assert exit_.value.code == 2
    assert "data/pairs.jsonl:1: missing field(s) response" in capsys.readouterr().err
