"""Story diversity and coherence scores (synthempathy/diversity.py) on crafted inputs."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthempathy.diversity import coherence_score, sample_by_id, sampling_metrics, self_bleu, within_group_diversity
from synthempathy.embeddings import Embedder
from synthempathy.text import ngrams, words

UNRELATED = [
    "The quarterly budget review showed the marketing team overspent on travel by twelve percent.",
    "My grandmother's garden is full of tomatoes, basil and a stubborn fig tree that never fruits.",
    "The train to the coast was cancelled, so we spent the night reading in a tiny station cafe.",
    "Quantum error correction needs many physical qubits to encode a single reliable logical qubit.",
]


@pytest.fixture(scope="module")
def embed(tmp_path_factory):
    return Embedder(cache_dir=tmp_path_factory.mktemp("embeddings")).encode


def reference_self_bleu(texts, max_n=4):
    """The obvious quadratic version: clip each n-gram by its highest count in any other text."""
    scores = []
    for i, text in enumerate(texts):
        logs = []
        for n in range(1, max_n + 1):
            own = Counter(ngrams(words(text), n))
            if not own:
                continue
            others = [Counter(ngrams(words(t), n)) for j, t in enumerate(texts) if j != i]
            clipped = sum(min(c, max((o[g] for o in others), default=0)) for g, c in own.items())
            logs.append(np.log(clipped / sum(own.values())) if clipped else -np.inf)
        scores.append(float(np.exp(np.mean(logs))) if logs else 0.0)
    return float(np.mean(scores))


def test_within_group_diversity_identical_vs_unrelated(embed):
    same = embed([UNRELATED[0]] * 3)
    assert within_group_diversity(same, ["a", "a", "a"]) == pytest.approx(0.0, abs=1e-6)
    assert within_group_diversity(embed(UNRELATED), ["a"] * 4) > 0.8  # MiniLM: unrelated cosines ~0-0.15


def test_within_group_diversity_averages_groups_and_skips_singletons():
    e = np.eye(3, dtype=np.float32)
    vectors = np.stack([e[0], e[0], e[0], e[1], e[2]])
    # group a: identical (0); group b: orthogonal (1); group c: one story, skipped.
    assert within_group_diversity(vectors, ["a", "a", "b", "b", "c"]) == pytest.approx(0.5)
    assert within_group_diversity(vectors[:1], ["a"]) == 0.0


def test_self_bleu_identical_is_one_and_unrelated_is_zero():
    assert self_bleu([UNRELATED[0]] * 3) == pytest.approx(1.0)
    assert self_bleu(UNRELATED) == 0.0  # no shared 4-gram in any of them
    assert self_bleu(["only one text"]) == 0.0


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(st.lists(st.sampled_from("a b c d e".split()), max_size=12).map(" ".join), min_size=2, max_size=8))
def test_self_bleu_equals_the_quadratic_reference(texts):
    assert self_bleu(texts) == pytest.approx(reference_self_bleu(texts))


def test_sample_by_id_is_fixed_size_and_stable_under_growth():
    records = [{"id": f"sad-{i}-s0"} for i in range(50)]
    sample = sample_by_id(records, 10)
    assert len(sample) == 10 and sample == sample_by_id(list(reversed(records)), 10)
    grown = sample_by_id(records + [{"id": f"sad-{i}-s1"} for i in range(50)], 10)
    assert len({r["id"] for r in grown} & {r["id"] for r in sample}) >= 3  # half the pool is old


def test_coherence_is_the_mean_of_its_three_shares():
    assert coherence_score(on_topic=1.0, survival=1.0, repetition=0.0) == 1.0
    assert coherence_score(on_topic=0.5, survival=0.25, repetition=0.25) == pytest.approx(0.5)


def story(sid, k, scenario, text):
    return {"id": f"{sid}-s{k}", "scenario_id": sid, "scenario": scenario, "story": text}


def test_sampling_metrics_on_copies_vs_varied_stories(embed):
    scenario = "I failed my driving test for the second time and my parents are disappointed."
    copies = [story("sad-1", k, scenario, "I failed my driving test again and I feel like I let my parents down badly.") for k in range(3)]
    varied = [
        story("sad-1", 0, scenario, "Maya failed her driving test twice; her parents sighed at dinner and she felt small."),
        story("sad-1", 1, scenario, "After failing his driving test again, Tom practised parking every evening, dreading his parents' questions."),
        story("sad-1", 2, scenario, "The driving examiner shook her head: a second failure. Lena dreaded telling her disappointed parents."),
    ]
    flat = sampling_metrics(copies, final_count=3, embed=embed, min_scenario_similarity=0.3, sample_size=10)
    rich = sampling_metrics(varied, final_count=3, embed=embed, min_scenario_similarity=0.3, sample_size=10)
    assert flat["diversity"] == 0.0 and flat["self_bleu"] == 1.0 and rich["diversity"] > 0.2 and rich["self_bleu"] < 0.2
    assert flat["on_topic"] == rich["on_topic"] == 1.0 and flat["survival"] == 1.0 and flat["repetition"] == 0.0
    assert flat["coherence"] == 1.0 and flat["stories"] == 3 and flat["self_bleu_sample"] == 3
    off_topic = sampling_metrics(
        [story("sad-1", 0, scenario, UNRELATED[3]), *varied[1:]], final_count=1, embed=embed, min_scenario_similarity=0.3, sample_size=2
    )
    assert off_topic["on_topic"] == pytest.approx(2 / 3, abs=1e-4) and off_topic["survival"] == pytest.approx(1 / 3, abs=1e-4)
    assert off_topic["self_bleu_sample"] == 2


def test_sampling_metrics_without_stories_is_all_zero(embed):
    metrics = sampling_metrics([], final_count=0, embed=embed, min_scenario_similarity=0.3, sample_size=10)
    assert metrics["stories"] == 0 and metrics["diversity"] == metrics["coherence"] == 0.0
