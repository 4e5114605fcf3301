"""Export formats round-trip through `datasets`, Parquet bytes are stable, the card is complete."""

from pathlib import Path

import pytest

from synthempathy.errors import InputError
from synthempathy.export import MetricsFile, Provenance, dataset_card, sft_records, write_parquet_atomic
from synthempathy.io import write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.pii import PII_TYPES

ROOT = Path(__file__).resolve().parents[1]


def pair(i: int, category: str, **extra) -> dict:
    return {
        "id": f"p{i}",
        "scenario_id": f"s{i}",
        "category": category,
        "severity": 5.5 + i,
        "scenario": "exam stress",
        "story": "A story.",
        "explanation": f"I have an exam tomorrow and I feel unprepared, number {i}.",
        "response": "That sounds stressful; it makes sense to feel anxious. What would help you most tonight?",
        "scenario_similarity": 0.61,
        "story_similarity": 0.72,
        "response_similarity": 0.55,
        "er": 1.2,
        "ip": 0.4,
        "ex": 1.6,
        "empathy": 1.0667,
        "er_level": 1,
        "ip_level": 0,
        "ex_level": 2,
        "crisis": False,
        **extra,
    }


PROVENANCE = Provenance("SmolLM2-135M-Instruct.Q4_1.gguf", "sha256:" + "b" * 64, "c" * 64)
CORPUS = [pair(0, "School"), pair(1, "Work", crisis=True), pair(2, "School", note="only here")]
FILTER = MetricsFile(
    "metrics/filter.json",
    {
        "records_in": 5,
        "records_out": 3,
        "rejected": {"refusal": 2, "pii": 0},
        "crisis_flagged": 1,
        "pii_scrubbed": 1,
        "pii_scrubbed_by_type": {**dict.fromkeys(PII_TYPES, 0), "phone": 2},
        "pii_dropped_by_type": dict.fromkeys(PII_TYPES, 0),
        "funnel": {"steps": ["scenarios", "stories", "final"], "counts": {"final": 3, "scenarios": 4, "stories": 8}},
    },
)
EMPATHY = MetricsFile("metrics/empathy.json", {"n": 5, "er": {"mean": 1.1}})
SCORER = MetricsFile(
    "metrics/empathy_scorer.json",
    {
        "heldout_posts": 250,
        "heldout": {
            m: {"model": {"accuracy": 0.8, "macro_f1": f1}, "majority": {"accuracy": 0.6, "macro_f1": 0.25}}
            for m, f1 in [("er", 0.65), ("ip", 0.55), ("ex", 0.6)]
        },
    },
)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return tmp_path / "hf-cache"


def test_sft_jsonl_round_trips_through_datasets(tmp_path, offline):
    from datasets import load_dataset

    path = tmp_path / "sft.jsonl"
    write_jsonl_atomic(path, sft_records(CORPUS))
    rows = load_dataset("json", data_files=str(path), split="train", cache_dir=str(offline)).to_list()
    assert [r["id"] for r in rows] == ["p0", "p1", "p2"]
    assert rows[1]["messages"] == [{"role": "user", "content": CORPUS[1]["explanation"]}, {"role": "assistant", "content": CORPUS[1]["response"]}]


def test_parquet_round_trips_through_datasets_and_is_byte_stable(tmp_path, offline):
    from datasets import load_dataset

    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_parquet_atomic(first, CORPUS)
    write_parquet_atomic(second, [dict(r) for r in CORPUS])
    assert first.read_bytes() == second.read_bytes()
    rows = load_dataset("parquet", data_files=str(first), split="train", cache_dir=str(offline)).to_list()
    # A field some records lack is a null column for the others.
    assert rows == [{**r, "note": r.get("note")} for r in CORPUS]
    assert list(rows[0]) == [*CORPUS[0], "note"]


def test_dataset_card_describes_corpus_sources_and_licences():
    card = dataset_card(CORPUS, FILTER, EMPATHY, SCORER, load_params(ROOT / "params.yaml"), PROVENANCE)
    assert card.startswith("---\n") and "path: synthempathy.parquet" in card
    assert "| School | 2 | 66.7% |" in card and "| Work | 1 | 33.3% |" in card
    assert "| 3 | 1 | 1 |" in card  # pairs, crisis-flagged, PII-scrubbed
    assert "| phone | `[PHONE]` | 2 | 0 |" in card and "| iban | `[IBAN]` | 0 | 0 |" in card  # per type: spans scrubbed, spans in dropped pairs
    assert "national formats of US, GB" in card
    assert "| 1.2 | 0.4 | 1.6 | 1.067 |" in card  # mean ER, IP, EX, empathy
    assert "| er.mean | 1.1 |" in card
    assert "| ER | 0.8 | 0.65 | 0.25 |" in card and "| EX | 0.8 | 0.6 | 0.25 |" in card
    assert "distinct-1 0.3" in card  # 15 of the 45 response words are distinct
    assert "| scenarios | 4 |\n| stories | 8 |\n| final | 3 |" in card  # pipeline order, not the file's sorted keys
    assert "refusal 2" in card and "pii 0" not in card
    assert "- Generation model weights: `sha256:" + "b" * 64 + "`." in card and "- `params.yaml` sha256: `" + "c" * 64 + "`." in card
    for needle in ("MIT", "Mauriello", "Sharma", "arXiv:2502.17857", "Hirschberg", "Known limitations", "SmolLM2-135M-Instruct.Q4_1.gguf"):
        assert needle in card


def test_dataset_card_rejects_stale_metrics():
    stale = FILTER._replace(data={**FILTER.data, "records_out": 7})
    with pytest.raises(InputError, match="records_out"):
        dataset_card(CORPUS, stale, EMPATHY, SCORER, load_params(ROOT / "params.yaml"), PROVENANCE)
    no_pii_counts = FILTER._replace(data={k: v for k, v in FILTER.data.items() if k != "pii_scrubbed_by_type"})
    with pytest.raises(InputError, match="metrics/filter.json: no pii_scrubbed_by_type; rerun"):
        dataset_card(CORPUS, no_pii_counts, EMPATHY, SCORER, load_params(ROOT / "params.yaml"), PROVENANCE)
    with pytest.raises(InputError, match="metrics/filter.json: no funnel.counts"):
        dataset_card(CORPUS, FILTER._replace(data={"records_out": 3}), EMPATHY, SCORER, load_params(ROOT / "params.yaml"), PROVENANCE)
