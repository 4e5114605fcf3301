"""Each filter rule on crafted positive and negative examples; policies, funnel and the stage."""

import json
import shutil
from pathlib import Path

import pytest
from helpers import stage_argv

from synthempathy import filters as F
from synthempathy.params import FilterParams
from synthempathy.pii import PII_TYPES
from synthempathy.text import distinct_n, ngram_overlap, ngrams, repetition_ratio, word_count, words

ROOT = Path(__file__).resolve().parents[1]
PARAMS = FilterParams(
    min_explanation_words=15,
    max_explanation_words=120,
    min_response_words=12,
    max_response_words=120,
    max_copy_ratio=0.5,
    max_repetition_ratio=0.3,
    crisis_policy="flag",
    pii_policy="scrub",
    pii_types=PII_TYPES,
    pii_phone_regions=("US", "GB"),
    min_empathy=None,
)
EXPLANATION = (
    "I have three exams next week and a pile of unfinished homework. I stay up until 3 a.m. every night "
    "and I still feel like I am falling behind everyone in my class."
)
RESPONSE = (
    "That sounds exhausting. Staying up that late with three exams coming would wear anyone down, and it "
    "makes sense that you feel behind. You are clearly working hard; could you ask your professor for help planning the week?"
)


def record(**changes):
    base = {
        "id": "sad-1-s0",
        "scenario_id": "sad-1",
        "category": "School",
        "severity": 6.0,
        "scenario": "I have so much homework and my exams are next week",
        "story": "Ana is a junior with three exams next week.",
        "explanation": EXPLANATION,
        "response": RESPONSE,
        "explanation_finish_reason": "stop",
        "response_finish_reason": "stop",
        "scenario_similarity": 0.61,
        "story_similarity": 0.53,
        "response_similarity": 0.66,
        "explanation_tokens": 40,
    }
    return {**base, **changes}


def verdict(rec, params=PARAMS):
    ((out, drop),) = F.run_filters([rec], F.build_rules(params))
    return out, drop


def test_clean_pair_passes_every_rule():
    out, drop = verdict(record())
    assert drop is None and out["crisis"] is False


def test_text_utilities():
    assert words("I'm  fine, don't worry!") == ["i'm", "fine", "don't", "worry"]
    assert word_count("I'm  fine, don't worry!") == 4
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")] and ngrams(["a"], 2) == []
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n([], 2) == 0.0
    assert repetition_ratio("one two", 4) == 0.0
    assert repetition_ratio("a b c d " * 10, 4) > 0.8
    assert ngram_overlap("the cat sat down", "yes the cat sat down", 4) == 1.0


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"response_finish_reason": "length"}, "truncated"),
        ({"explanation_finish_reason": "length"}, "truncated"),
        ({"response": RESPONSE + " <|im_end|>"}, "template_tokens"),
        ({"response": "[INST] " + RESPONSE}, "template_tokens"),
        ({"response": RESPONSE + "\nassistant: anything else?"}, "template_tokens"),
        ({"explanation": "<s> " + EXPLANATION}, "template_tokens"),
        ({"response": "I'm sorry, but I can't help with that request. " + RESPONSE}, "refusal"),
        ({"response": "I’m sorry, but I can’t continue this conversation. " + RESPONSE}, "refusal"),
        ({"explanation": "I cannot provide a rewrite of this story. " + EXPLANATION}, "refusal"),
        ({"response": "As an AI, I don't have feelings, but " + RESPONSE}, "ai_disclaimer"),
        ({"response": RESPONSE + " I'm just a language model, though."}, "ai_disclaimer"),
        ({"response": "Sure! Here's an empathetic response:\n" + RESPONSE}, "meta_text"),
        ({"explanation": "Here is the rewritten story in first person:\n" + EXPLANATION}, "meta_text"),
        ({"response": "Here is a response: " + RESPONSE}, "meta_text"),
        ({"response": "Sure, I'd like to share a thought. " + RESPONSE}, "meta_text"),
        ({"response": RESPONSE + " How can I assist you further?"}, "meta_text"),
        ({"explanation": EXPLANATION + " I'll be telling the story from my perspective."}, "meta_text"),
        (
            {"response": "Entiendo que estés muy cansado. Tienes tres exámenes la próxima semana y trabajas hasta tarde cada noche, y es normal sentirse así."},
            "not_english",
        ),
        ({"explanation": "I failed my exam and I feel terrible about it."}, "explanation_too_short"),
        ({"explanation": EXPLANATION + " I feel awful." * 40}, "explanation_too_long"),
        ({"response": "That sounds hard, you poor thing, really."}, "response_too_short"),
        (
            {
                "explanation": "Ana has three exams next week and a pile of unfinished homework. She stays up until 3 a.m. and still feels like she is falling behind."
            },
            "not_first_person",
        ),
        (
            {"response": "That sounds exhausting. Staying up that late with three exams coming would wear anyone down, and feeling behind is understandable."},
            "not_second_person",
        ),
        ({"response": "You said: " + EXPLANATION}, "copied_explanation"),
        ({"response": "You are strong. " + "You can do this and you will be fine. " * 6}, "repetition"),
        ({"explanation": EXPLANATION + " I have been having a lot of trouble sleeping and " * 8}, "repetition"),
    ],
)
def test_each_rule_drops_its_case(changes, reason):
    _, drop = verdict(record(**changes))
    assert drop is not None and drop.reason == reason, drop


@pytest.mark.parametrize(
    "changes",
    [
        {"explanation": EXPLANATION + " I cannot sleep and I can't help but cry every night."},  # not a refusal
        {"response": "Of course you feel that way. " + RESPONSE},  # not meta-text
        {"response": RESPONSE + " Here's the thing: you matter."},  # colloquial, not meta-text
        {"explanation": EXPLANATION.replace("I ", "I’m sure I ")},  # curly apostrophes still first person
        {"response": RESPONSE + " Please don't hurt yourself; you deserve support."},  # support, not harm
    ],
)
def test_look_alikes_pass(changes):
    assert verdict(record(**changes))[1] is None


def test_every_reason_is_declared_and_an_undeclared_one_is_an_error():
    reasons = F.declared_reasons(F.build_rules(PARAMS))
    assert {"truncated", "pii", "crisis_excluded", "harmful_advice", "low_empathy"} <= set(reasons)
    assert len(set(reasons)) == len(reasons)
    rules = [F.Rule(("truncated",), lambda r: F.Drop("made_up", "a reason no rule declares"))]
    with pytest.raises(ValueError, match="'made_up' is not declared"):
        F.filter_pairs([record()], PARAMS.model_copy(), rules=rules)


CRISIS_EXPLANATION = (
    "I have been thinking about suicide lately. My exams are piling up, I stay up every night, and I feel like nothing I do will ever be enough for my parents."
)


@pytest.mark.parametrize("policy", ["flag", "exclude"])
def test_crisis_policy(policy):
    params = PARAMS.model_copy(update={"crisis_policy": policy})
    out, drop = verdict(record(explanation=CRISIS_EXPLANATION), params)
    if policy == "flag":
        assert drop is None and out["crisis"] is True
    else:
        assert drop.reason == "crisis_excluded"
    assert verdict(record(scenario="I want to kill myself"), params)[1] == (
        None if policy == "flag" else F.Drop("crisis_excluded", "self-harm or suicide in scenario or explanation")
    )
    assert verdict(record(), params)[0]["crisis"] is False


@pytest.mark.parametrize("policy", ["flag", "exclude"])
@pytest.mark.parametrize(
    "harmful",
    [
        "Maybe you should just end it all, nobody would blame you.",
        "If it hurts that much, go ahead and hurt yourself, you deserve to feel something.",
        "Honestly, nobody would miss you.",
        "Look up the lethal dose of your pills so you know.",
    ],
)
def test_harmful_advice_to_a_crisis_text_is_dropped_under_every_policy(policy, harmful):
    params = PARAMS.model_copy(update={"crisis_policy": policy})
    _, drop = verdict(record(explanation=CRISIS_EXPLANATION, response=RESPONSE + " " + harmful), params)
    assert drop.reason == "harmful_advice"


def test_pii_is_scrubbed_in_every_published_text_field():
    rec = record(
        scenario="my landlord keeps texting 07911 123456 at night",
        story="Ana's landlord, reachable at ana.l@mail.com, texts at night.",
        explanation=EXPLANATION + " My card 4111 1111 1111 1111 was declined.",
        response=RESPONSE + " You can call Samaritans on 116 123 or 988, day or night.",
    )
    out, drop = verdict(rec)
    assert drop is None
    assert out["scenario"] == "my landlord keeps texting [PHONE] at night"
    assert out["story"] == "Ana's landlord, reachable at [EMAIL], texts at night."
    assert out["explanation"].endswith("My card [CREDIT_CARD] was declined.")
    assert out["response"] == rec["response"]  # helplines stay
    assert out[F.PII_FOUND] == (("credit_card", 1), ("email", 1), ("phone", 1))


def test_pii_types_param_limits_what_is_scrubbed():
    rec = record(explanation=EXPLANATION + " Email me at sam@mail.com or call 212-555-0199.")
    out, _ = verdict(rec, PARAMS.model_copy(update={"pii_types": ("phone",)}))
    assert out["explanation"].endswith("Email me at sam@mail.com or call [PHONE].")


def test_pii_policy_drop_names_fields_and_types_never_values():
    rec = record(
        scenario="call me on +44 7911 123456", explanation=EXPLANATION + " Email me at sam@mail.com.", response=RESPONSE + " Call 555-123-4567 anytime."
    )
    _, drop = verdict(rec, PARAMS.model_copy(update={"pii_policy": "drop"}))
    assert drop.reason == "pii" and drop.detail == "scenario: phone; explanation: email; response: phone"
    assert drop.pii_found == (("email", 1), ("phone", 2))


def test_min_empathy():
    params = PARAMS.model_copy(update={"min_empathy": 2.0})
    assert verdict(record(empathy=1.5), params)[1].reason == "low_empathy"
    assert verdict(record(empathy=2.0), params)[1] is None
    assert "empathy" in F.required_fields(params) and "empathy" not in F.required_fields(PARAMS)


def test_filter_pairs_output_fields_and_metrics():
    recs = [
        record(id="sad-1-s0", er=1, ip=0, ex=2, empathy=3.0, er_level="weak", ip_level="no", ex_level="strong"),
        record(id="sad-1-s1", response_finish_reason="length"),
        record(id="sad-2-s0", response=RESPONSE + " Reach me at a@b.com or b@c.org, or @ana_k."),
        record(id="sad-3-s0", scenario="my ex posts my address, 42 Elm Street"),
    ]
    result = F.filter_pairs(recs, PARAMS)
    kept, rejected, metrics = result.kept, result.rejected, result.metrics()
    assert list(kept[0]) == [*F.CORPUS_FIELDS, *F.EMPATHY_FIELDS, "crisis"]
    assert list(kept[1]) == [*F.CORPUS_FIELDS, "crisis"]  # no scores: no empathy fields; no pii_found
    assert rejected == [{"id": "sad-1-s1", "stage": "filter", "reason": "truncated", "detail": "response hit max_tokens"}]
    assert metrics["records_in"] == 4 and metrics["records_out"] == 3 and metrics["pii_scrubbed"] == 2
    assert metrics["rejected"]["truncated"] == 1 and sum(metrics["rejected"].values()) == 1
    assert list(metrics["pii_scrubbed_by_type"]) == list(PII_TYPES)
    assert {k: v for k, v in metrics["pii_scrubbed_by_type"].items() if v} == {"email": 2, "handle": 1, "address": 1}
    assert not any(metrics["pii_dropped_by_type"].values())

    result = F.filter_pairs(recs, PARAMS.model_copy(update={"pii_policy": "drop"}))
    kept, rejected, metrics = result.kept, result.rejected, result.metrics()
    assert [r["id"] for r in kept] == ["sad-1-s0"]
    assert [(r["id"], r["reason"], r["detail"]) for r in rejected[1:]] == [
        ("sad-2-s0", "pii", "response: email, handle"),
        ("sad-3-s0", "pii", "scenario: address"),
    ]
    assert {k: v for k, v in metrics["pii_dropped_by_type"].items() if v} == {"email": 2, "handle": 1, "address": 1}
    assert metrics["rejected"]["pii"] == 2 and metrics["pii_scrubbed"] == 0


def test_merge_and_funnel():
    merged = F.merge_rejections(
        [
            [{"id": "sad-10-s0", "stage": "dedup"}, {"id": "sad-2-s1", "stage": "dedup"}],
            [{"id": "sad-2-s1", "stage": "filter"}, {"id": "sad-9", "stage": "filter"}],
        ]
    )
    assert [(r["id"], r["stage"]) for r in merged] == [("sad-2-s1", "dedup"), ("sad-2-s1", "filter"), ("sad-9", "filter"), ("sad-10-s0", "dedup")]
    funnel = F.retention_funnel({"scenarios": 4, "stories": 8, "pairs": 6, "final": 0})
    assert funnel == {
        "steps": ["scenarios", "stories", "pairs", "final"],
        "counts": {"scenarios": 4, "stories": 8, "pairs": 6, "final": 0},
        "ratio_to_previous": {"stories": 2.0, "pairs": 0.75, "final": 0.0},
    }


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_stage_merges_every_rejection_and_counts_the_funnel(tmp_path, monkeypatch, capsys):
    from stages import filter as stage

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    for name, n in [("scenarios", 2), ("stories", 4), ("stories_dedup", 3), ("explanations", 3), ("pairs", 3), ("aligned", 2)]:
        write_jsonl(data / f"{name}.jsonl", [{"id": f"x{i}"} for i in range(n)])
    for name in ("brainstorm", "rewrite", "respond"):
        write_jsonl(data / f"rejected/{name}.jsonl", [])
    write_jsonl(data / "rejected/dedup.jsonl", [{"id": "sad-3-s1", "stage": "dedup", "reason": "exact_duplicate", "detail": ""}])
    write_jsonl(data / "rejected/align.jsonl", [{"id": "sad-1-s1", "stage": "align", "reason": "near_duplicate", "detail": ""}])
    write_jsonl(data / "scored.jsonl", [record(id="sad-1-s0"), record(id="sad-2-s0", response_finish_reason="length")])
    stage.main(stage_argv("filter"))
    corpus = [json.loads(line) for line in open("data/corpus/synthempathy.jsonl")]
    assert [r["id"] for r in corpus] == ["sad-1-s0"]
    rejected = [json.loads(line) for line in open("data/rejected.jsonl")]
    assert [(r["id"], r["stage"], r["reason"]) for r in rejected] == [
        ("sad-1-s1", "align", "near_duplicate"),
        ("sad-2-s0", "filter", "truncated"),
        ("sad-3-s1", "dedup", "exact_duplicate"),
    ]
    metrics = json.loads(open("metrics/filter.json").read())
    assert metrics["funnel"]["steps"] == ["scenarios", "stories", "stories_dedup", "explanations", "pairs", "aligned", "scored", "final"]
    assert metrics["funnel"]["counts"] == {
        "scenarios": 2,
        "stories": 4,
        "stories_dedup": 3,
        "explanations": 3,
        "pairs": 3,
        "aligned": 2,
        "scored": 2,
        "final": 1,
    }
    assert metrics["rejected_by_stage"] == {"align": 1, "dedup": 1, "filter": 1}
    funnel_plot = open("metrics/plots/funnel.csv").read().splitlines()  # dvc plots funnel, in pipeline order
    assert funnel_plot == ["step,records", "scenarios,2", "stories,4", "stories_dedup,3", "explanations,3", "pairs,3", "aligned,2", "scored,2", "final,1"]
    assert open("metrics/plots/rejections.csv").read().splitlines()[1:] == [
        "align: near_duplicate,align,near_duplicate,1",
        "dedup: exact_duplicate,dedup,exact_duplicate,1",
        "filter: truncated,filter,truncated,1",
    ]

    write_jsonl(data / "scored.jsonl", [{k: v for k, v in record().items() if k != "response_finish_reason"}])
    with pytest.raises(SystemExit) as exit_:
        stage.main(stage_argv("filter"))
    assert exit_.value.code == 2
    assert "data/scored.jsonl:1: missing field(s) response_finish_reason" in capsys.readouterr().err


def test_stage_scrubs_pii_counts_it_and_rebuilds_the_same_bytes(tmp_path, monkeypatch):
    from stages import filter as stage

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    for name in ("scenarios", "stories", "stories_dedup", "explanations", "pairs", "aligned"):
        write_jsonl(tmp_path / f"data/{name}.jsonl", [{"id": "x"}])
    for name in ("brainstorm", "dedup", "rewrite", "respond", "align"):
        write_jsonl(tmp_path / f"data/rejected/{name}.jsonl", [])
    write_jsonl(
        tmp_path / "data/scored.jsonl",
        [record(scenario="my ex keeps calling 07911 123456", response=RESPONSE + " Or text 988, or reach me at ana.k@mail.com.")],
    )
    stage.main(stage_argv("filter"))
    outputs = [Path(p).read_bytes() for p in ("data/corpus/synthempathy.jsonl", "metrics/filter.json")]
    (corpus,) = [json.loads(line) for line in open("data/corpus/synthempathy.jsonl")]
    assert corpus["scenario"] == "my ex keeps calling [PHONE]" and corpus["response"].endswith("Or text 988, or reach me at [EMAIL].")
    assert "pii_found" not in corpus
    metrics = json.loads(open("metrics/filter.json").read())
    assert metrics["pii_scrubbed"] == 1 and {k: v for k, v in metrics["pii_scrubbed_by_type"].items() if v} == {"email": 1, "phone": 1}
    stage.main(stage_argv("filter"))
    assert [Path(p).read_bytes() for p in ("data/corpus/synthempathy.jsonl", "metrics/filter.json")] == outputs


def test_stage_with_an_unknown_pii_type_stops_with_one_line(tmp_path, monkeypatch, capsys):
    from stages import filter as stage

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("pii_types: [email,", "pii_types: [passport,"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        stage.main(stage_argv("filter"))
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in err
    assert err.startswith("error: params.yaml: filter.pii_types: Input should be 'email', 'url',") and "got 'passport'" in err
    assert not (tmp_path / "data/corpus/synthempathy.jsonl").exists()
