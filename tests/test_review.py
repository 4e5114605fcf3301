"""The review sheet (data/corpus/review.md): seeded picks, the chain of each pair, one rejected
record per reason found where it was dropped, crisis marks, readable and stable text."""

import re
from pathlib import Path

from synthempathy.params import load_params
from synthempathy.records import scenario_id_of
from synthempathy.review import CRISIS_MARK, extremes, latest_records, rejection_examples, review_sheet, sample

PII = load_params(Path(__file__).resolve().parents[1] / "params.yaml").filter.pii


def pair(i: int, empathy: float, **extra) -> dict:
    return {
        "id": f"sad-{i}-s0",
        "scenario_id": f"sad-{i}",
        "category": "School",
        "severity": 3.5,
        "scenario": f"exam number {i} tomorrow",
        "story": f"Story {i}: the exam is tomorrow and I have not studied.",
        "explanation": f"I have exam {i} tomorrow and I feel unprepared.",
        "response": f"That sounds stressful, {i}. What would help you most tonight?",
        "scenario_similarity": 0.61,
        "story_similarity": 0.72,
        "response_similarity": 0.55,
        "er": 1.2,
        "ip": 0.4,
        "ex": 0.1,
        "empathy": empathy,
        "er_level": 1,
        "ip_level": 0,
        "ex_level": 0,
        "crisis": False,
        **extra,
    }


CORPUS = [pair(i, empathy=round(0.1 * i, 4)) for i in range(1, 13)]


def test_sample_is_seeded_stable_and_keeps_earlier_picks_when_the_corpus_grows():
    picked = sample(CORPUS, seed=2025, n=4)
    assert len(picked) == 4 and picked == sample(list(reversed(CORPUS)), seed=2025, n=4)  # input order is irrelevant
    assert [p["id"] for p in picked] == sorted((p["id"] for p in picked), key=lambda i: int(i.split("-")[1]))  # shown by id
    assert picked != sample(CORPUS, seed=7, n=4)
    grown = sample(CORPUS + [pair(i, 0.5) for i in range(13, 40)], seed=2025, n=40)
    assert {p["id"] for p in picked} <= {p["id"] for p in grown}


def test_extremes_are_the_highest_and_lowest_without_overlap():
    best, worst = extremes(CORPUS, 3)
    assert [p["empathy"] for p in best] == [1.2, 1.1, 1.0]
    assert [p["empathy"] for p in worst] == [0.1, 0.2, 0.3]
    best, worst = extremes(CORPUS[:4], 3)
    assert len(best) == 3 and [p["id"] for p in worst] == ["sad-1-s0"]  # never a pair twice


REJECTIONS = [
    {"id": "sad-7-s1", "stage": "brainstorm", "reason": "empty_generation", "detail": "finish_reason=stop"},
    {"id": "sad-1-s1", "stage": "align", "reason": "off_topic_explanation", "detail": "scenario_similarity 0.12 < 0.3"},
    {"id": "sad-2-s1", "stage": "align", "reason": "off_topic_explanation", "detail": "scenario_similarity 0.05 < 0.3"},
    {"id": "sad-3-s1", "stage": "filter", "reason": "template_tokens", "detail": "response: '</s>'"},
]


def test_one_example_per_reason_most_frequent_first_each_found_as_its_stage_received_it():
    examples = rejection_examples(REJECTIONS, seed=2025)
    assert [(e.stage, e.reason, e.count) for e in examples] == [
        ("align", "off_topic_explanation", 2),
        ("brainstorm", "empty_generation", 1),
        ("filter", "template_tokens", 1),
    ]
    assert examples == rejection_examples(list(reversed(REJECTIONS)), seed=2025)
    scored = [pair(3, 0.2, id="sad-3-s1", response="Here you go </s> call me at 555-123-4567")]
    pairs = [
        {"id": "sad-1-s1", "scenario": "rent", "story": "s", "explanation": "e", "response": "r"},
        {"id": "sad-2-s1", "scenario": "rent", "story": "s", "explanation": "e", "response": "r"},
        {**scored[0], "response": "older"},
    ]
    scenarios = [{"id": "sad-7", "text": "my landlord raised the rent", "category": "Financial Problem", "severity": 6.0}]
    ids = [e.rejection["id"] for e in examples]
    records = latest_records(ids, [iter(scored), iter(pairs)], scenarios)
    assert records["sad-3-s1"]["response"].startswith("Here you go")  # the latest file wins: what filter saw
    assert records["sad-7-s1"] == {
        "id": "sad-7-s1",
        "scenario_id": "sad-7",
        "category": "Financial Problem",
        "severity": 6.0,
        "scenario": "my landlord raised the rent",
    }
    assert set(records) == set(ids)


def test_scenario_id_of_story_and_scenario_ids():
    assert scenario_id_of("sad-12-s3") == "sad-12" and scenario_id_of("sad-12") == "sad-12"


def sheet(corpus=CORPUS, rejections=REJECTIONS, records=None) -> str:
    examples = rejection_examples(rejections, seed=2025)
    return review_sheet(corpus, examples, records or {}, len(rejections), seed=2025, sample_size=3, extremes_size=2, pii=PII)


def test_sheet_shows_each_part_with_chains_scores_and_crisis_marks():
    corpus = [*CORPUS[:11], pair(12, 1.9, crisis=True)]
    records = {
        "sad-3-s1": pair(3, 0.2, id="sad-3-s1", response="Here you go </s> mail me at a@b.org"),
        "sad-7-s1": {"id": "sad-7-s1", "scenario": "my landlord raised the rent"},
    }
    text = sheet(corpus, records=records)
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == [
        "1. Sample: 3 of 12 pairs, picked by seed 2025",
        "2. Highest empathy",
        "3. Lowest empathy",
        "4. Rejected: one example per reason",
        "5. Crisis-flagged pairs: 1",
    ]
    best = text.split("## 2. Highest empathy")[1].split("## 3.")[0]
    assert best.index("### 1. sad-12-s0") < best.index("### 2. sad-11-s0") and CRISIS_MARK in best
    assert "empathy **1.90** · ER 1.20 (level 1) · IP 0.40 (level 0) · EX 0.10 (level 0) · similarity scenario 0.61 / story 0.72 / response 0.55" in best
    chain = best.split("### 1. sad-12-s0")[1].split("### 2.")[0]
    labels = [chain.index(f"**{label}**") for label in ("Scenario (SAD stressor)", "Story (brainstorm)", "Explanation (the seeker, first person)", "Response")]
    assert labels == sorted(labels) and "> I have exam 12 tomorrow and I feel unprepared." in chain
    rejected = text.split("## 4.")[1].split("## 5.")[0]
    assert "### align: off_topic_explanation (2 records)" in rejected
    assert "Example `sad-3-s1`: response: '</s>'" in rejected  # the detail as the stage wrote it
    assert "> Here you go &lt;/s> mail me at [EMAIL]" in rejected  # rendered visibly, contact scrubbed
    assert "> my landlord raised the rent" in rejected
    assert "(its text is in none of the stage files)" in rejected  # the align examples: no record given
    assert "### 1. sad-12-s0\n\nSchool · severity 3.5 · **⚠ crisis**\n" in text.split("## 5.")[1]


def test_long_texts_are_blockquotes_never_table_cells():
    long = "I keep thinking about it. " * 60 + "\n\nAnd the next morning it was worse."
    text = sheet([pair(1, 1.0, explanation=long)], rejections=[])
    assert "|" not in text
    quote = text.split("**Explanation (the seeker, first person)**\n\n")[1].split("\n\n**Response**")[0]
    assert quote.splitlines() == ["> " + ("I keep thinking about it. " * 60).strip(), ">", "> And the next morning it was worse."]


def test_empty_corpus_and_no_rejections_still_give_every_part():
    text = review_sheet([], [], {}, 0, seed=1, sample_size=5, extremes_size=3, pii=PII)
    assert text.count("The corpus is empty.") == 3 and "No record was rejected." in text and "No pair of this corpus is crisis-flagged." in text
    assert text == review_sheet([], [], {}, 0, seed=1, sample_size=5, extremes_size=3, pii=PII) and text.endswith("\n")
