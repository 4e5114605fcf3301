"""Generation steps and the cached generator, with the real embedded model and tiny params."""

import re

import pytest
from helpers import TINY_MODEL, CrashAfter

from synthempathy.errors import InputError
from synthempathy.filters import Drop
from synthempathy.generation import build_requests, clean_generation, expand_scenarios, generate_with_resample, growth_order, no_check
from synthempathy.llm.cache import LLMCache, cache_key
from synthempathy.llm.generator import CachedGenerator, LocalEngine
from synthempathy.llm.llama import LlamaBackend
from synthempathy.llm.models import resolve_model_path
from synthempathy.llm.shards import ShardPlan
from synthempathy.llm.types import Completion
from synthempathy.params import SamplingParams
from synthempathy.prompts import Prompt, load_prompt
from synthempathy.records import story_index
from synthempathy.scenarios import pick_key, sample_per_category

TINY_SAMPLING = SamplingParams(temperature=0.9, top_p=0.95, max_tokens=12, repeat_penalty=1.1)
SCENARIOS = [
    {"id": "sad-1", "text": "2 of my foster kittens died", "category": "Emotional Turmoil", "severity": 8.2},
    {"id": "sad-7", "text": "my boss yelled at me in front of everyone", "category": "Work", "severity": 6.0},
]


@pytest.fixture(scope="module")
def backend():
    return LlamaBackend(resolve_model_path("default"), TINY_MODEL)


def story_requests(n_stories=2):
    return build_requests(expand_scenarios(SCENARIOS, n_stories), load_prompt("brainstorm"), TINY_SAMPLING, 2025, "brainstorm")


def test_expand_and_requests_have_stable_ids_and_seeds():
    small, large = story_requests(2), story_requests(3)
    assert [r.id for r in small] == ["sad-1-s0", "sad-1-s1", "sad-7-s0", "sad-7-s1"]
    by_id = {r.id: r for r in large}
    assert all(by_id[r.id] == r for r in small)  # adding stories never changes existing requests
    assert len({r.seed for r in large}) == len(large)
    assert "2 of my foster kittens died" in small[0].messages[-1][1]


def test_few_shot_examples_are_sent_as_turns_before_the_record(tmp_path):
    (tmp_path / "brainstorm.yaml").write_text(
        "system: You write stories.\n"
        "user: 'Problem: \"{scenario}\" Write a story.'\n"
        "examples:\n  - scenario: my rent went up\n    answer: Dan's rent went up.\n"
    )
    messages = load_prompt("brainstorm", tmp_path).messages({"id": "x", "scenario": "my truck won't start"})
    assert [role for role, _ in messages] == ["system", "user", "assistant", "user"]
    assert messages[1][1] == 'Problem: "my rent went up" Write a story.'  # the template, filled from the example
    assert messages[2][1] == "Dan's rent went up."
    assert messages[3][1] == 'Problem: "my truck won\'t start" Write a story.'


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ("  - scenario: my rent went up\n", "example 1 needs an 'answer' text"),
        ("  - answer: Dan's rent went up.\n", "example 1 lacks field(s) scenario"),
    ],
)
def test_bad_few_shot_example_is_a_one_line_error(tmp_path, examples, message):
    (tmp_path / "brainstorm.yaml").write_text("user: 'Problem: {scenario}'\nexamples:\n" + examples)
    with pytest.raises(InputError, match=re.escape(message)) as error:
        load_prompt("brainstorm", tmp_path)
    assert str(tmp_path / "brainstorm.yaml") in str(error.value) and "\n" not in str(error.value)


def test_shipped_prompts_load_and_fill_their_examples():
    """Every prompt in prompts/ loads; its examples (if any) render without leftover braces."""
    for stage in ("brainstorm", "rewrite", "respond"):
        prompt = load_prompt(stage)
        for question, answer in prompt.examples:
            assert "{" not in question and answer


def test_prompt_with_unknown_field_is_a_clear_error():
    prompt = Prompt("prompts/x.yaml", "", "Tell me about {nonexistent}")
    with pytest.raises(InputError, match="prompts/x.yaml.*nonexistent"):
        prompt.messages({"id": "sad-1"})


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("  Story: Anna lost her keys.\n", "Anna lost her keys."),
        ('"I feel lost."', "I feel lost."),
        ("**Response:** You sound tired.", "You sound tired."),
        ("Storytelling is hard.", "Storytelling is hard."),
        ("   ", ""),
    ],
)
def test_clean_generation(raw, clean):
    assert clean_generation(raw) == clean


def test_empty_generation_is_rejected_with_its_attempt():
    records = [{"id": "a"}, {"id": "b"}]
    completions = [Completion("a", " Hello there. ", 5, 3, "stop"), Completion("b", "  ", 5, 0, "length")]
    result = generate_with_resample(records, "story", "brainstorm", lambda pending, attempt: completions, no_check, (), 0)
    assert result.kept == [{"id": "a", "story": "Hello there.", "story_finish_reason": "stop", "story_tokens": 3, "story_attempt": 0}]
    assert result.rejected == [{"id": "b", "stage": "brainstorm", "reason": "empty_generation", "detail": "finish_reason=length", "attempt": 0, "story": ""}]


def test_resample_redraws_failed_records_with_derived_seeds_and_logs_every_failure():
    records = [{"id": "sad-1-s0"}, {"id": "sad-2-s0"}]
    seen = []

    def generate(pending, attempt):
        seen.append((attempt, [r["id"] for r in pending]))
        return [Completion(r["id"], f"{r['id']} try {attempt}", 5, 3, "stop") for r in pending]

    def check(cands):  # sad-2 passes at its second attempt, sad-1 never
        return [None if c["story"] == "sad-2-s0 try 1" else Drop("truncated", "x") for c in cands]

    result = generate_with_resample(records, "story", "brainstorm", generate, check, ("truncated",), 2)
    assert seen == [(0, ["sad-1-s0", "sad-2-s0"]), (1, ["sad-1-s0", "sad-2-s0"]), (2, ["sad-1-s0"])]
    assert [(r["id"], r["story_attempt"]) for r in result.kept] == [("sad-2-s0", 1)]
    assert [(r["id"], r["reason"], r["attempt"]) for r in result.rejected] == [
        ("sad-1-s0", "truncated", 0),
        ("sad-2-s0", "truncated", 0),
        ("sad-1-s0", "truncated", 1),
        ("sad-1-s0", "truncated", 2),
    ]
    assert result.extra_metrics["calls_per_attempt"] == {"0": 2, "1": 2, "2": 1} and result.extra_metrics["records_given_up"] == 1


def test_attempt_is_in_the_seed_and_the_cache_key():
    first = build_requests(expand_scenarios(SCENARIOS, 1), load_prompt("brainstorm"), TINY_SAMPLING, 2025, "brainstorm")
    again = build_requests(expand_scenarios(SCENARIOS, 1), load_prompt("brainstorm"), TINY_SAMPLING, 2025, "brainstorm", attempt=1)
    fingerprint = {"sha256": "abc", "chat_format": None, "gpu": False, "batch_size": 1}
    assert all(a.seed != b.seed for a, b in zip(first, again, strict=True))
    assert "attempt" not in first[0].sampling() and again[0].sampling()["attempt"] == 1
    same_seed = again[0].__class__(**{**again[0].__dict__, "seed": first[0].seed})
    assert cache_key(fingerprint, same_seed) != cache_key(fingerprint, first[0])  # the attempt alone changes the key


def test_cache_key_covers_model_sampling_and_seed():
    request = story_requests(1)[0]
    fingerprint = {"sha256": "abc", "chat_format": None, "gpu": False, "batch_size": 1}
    base = cache_key(fingerprint, request)
    assert base == cache_key(dict(fingerprint), request)
    assert base != cache_key({**fingerprint, "sha256": "abd"}, request)
    assert base != cache_key(fingerprint, request.__class__(**{**request.__dict__, "seed": request.seed + 1}))
    assert base != cache_key(fingerprint, request.__class__(**{**request.__dict__, "temperature": 0.5}))
    assert base == cache_key(fingerprint, request.__class__(**{**request.__dict__, "id": "other"}))  # the id only names it


def test_killed_run_resumes_without_redoing_calls_and_ends_identical(tmp_path, backend):
    requests = story_requests(2)
    fingerprint = {"sha256": "test", "chat_format": None, "gpu": False, "batch_size": 1}
    reference = CachedGenerator(LocalEngine(lambda: backend), LLMCache(tmp_path / "a"), fingerprint).generate(requests)
    assert all(c.text for c in reference) and {c.finish_reason for c in reference} <= {"stop", "length"}

    crashing = CrashAfter(backend, 2)
    with pytest.raises(KeyboardInterrupt):
        CachedGenerator(LocalEngine(lambda: crashing), LLMCache(tmp_path / "b"), fingerprint).generate(requests)
    resumed_backend = CrashAfter(backend, 99)
    resumed = CachedGenerator(LocalEngine(lambda: resumed_backend), LLMCache(tmp_path / "b"), fingerprint).generate(requests)
    assert resumed == reference
    assert resumed_backend.seen == [r.id for r in requests[2:]]  # finished calls were not redone

    rerun_backend = CrashAfter(backend, 0)  # a fully cached rerun never reaches the backend
    assert CachedGenerator(LocalEngine(lambda: rerun_backend), LLMCache(tmp_path / "b"), fingerprint).generate(requests) == reference
    assert rerun_backend.seen == []


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a GGUF"):
        resolve_model_path(str(bad))
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(resolve_model_path("default").read_bytes()[:4096])
    with pytest.raises(InputError, match="cannot load"):
        LlamaBackend(truncated, TINY_MODEL)
    with pytest.raises(InputError, match="file not found"):
        resolve_model_path(str(tmp_path / "missing.gguf"))


class Echo:
    """A deterministic stand-in backend: the completion names its request."""

    def generate(self, requests):
        return (Completion(r.id, f"story of {r.id}", 10, 3, "stop") for r in requests)


def test_growth_decodes_only_new_requests_and_boundary_shards(tmp_path):
    """Raising n_stories or n_per_category appends to the decode order, so the shards already
    cached stay whole: only the new requests and the last shard of each grown block are decoded.
    In id order (scenario-major) the same growth would put new requests into every shard."""
    stressors = [{"id": f"sad-{i}", "text": f"stressor {i}", "category": ("Work", "School", "Family")[i % 3], "severity": 5.0} for i in range(600)]
    plan = ShardPlan(min_size=6, spread=4, max_size=24)
    fingerprint = {"sha256": "test", "chat_format": None, "gpu": False, "batch_size": 2}

    def decoded(cache, n_per_category, n_stories, order=growth_order, seams=True):
        """(requests decoded, requests in all) at this corpus size."""
        records = expand_scenarios(sample_per_category(stressors, n_per_category, 2025), n_stories)
        requests = build_requests(order(records, 2025), load_prompt("brainstorm"), TINY_SAMPLING, 2025, "brainstorm")
        generator = CachedGenerator(LocalEngine(Echo), cache, fingerprint, plan)
        generator.generate(requests, segments=[story_index(r.id) for r in requests] if seams else None)
        return generator.stats.generated + generator.stats.recomputed, len(requests)

    cache = LLMCache(tmp_path / "growth")
    assert decoded(cache, 50, 3) == (450, 450)
    assert decoded(cache, 50, 4)[0] == 150  # a block appended after a cut: no old shard changes
    more_scenarios, total = decoded(cache, 52, 4)  # 2 more per category at the end of each of 4 blocks
    assert 24 < more_scenarios <= 24 + 4 * plan.max_size < total / 2  # each block's last shard, no more
    assert decoded(cache, 52, 4)[0] == 0  # a rerun decodes nothing

    by_id = LLMCache(tmp_path / "by-id")

    def by_id_order(records, seed):
        return records  # expand_scenarios' order: scenario-major

    decoded(by_id, 50, 3, order=by_id_order, seams=False)
    assert decoded(by_id, 50, 4, order=by_id_order, seams=False)[0] > 0.8 * 600


def test_growth_order_puts_the_story_index_first_then_the_pick_rank():
    records = expand_scenarios([{"id": f"sad-{i}", "text": "t", "category": "AB"[i % 2], "severity": 1.0} for i in range(4)], 2)
    ordered = [r["id"] for r in growth_order(records, 2025)]
    assert [story_index(i) for i in ordered] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert ordered[:4] == [i.replace("-s1", "-s0") for i in ordered[4:]]  # the same scenario order in every block
    ranks = {c: sorted((r["scenario_id"] for r in records if r["category"] == c), key=lambda sid: pick_key(2025, sid)) for c in "AB"}
    first_block = [i.rsplit("-s", 1)[0] for i in ordered[:4]]
    assert first_block[:2] in ([ranks["A"][0], ranks["B"][0]], [ranks["B"][0], ranks["A"][0]])  # rank 0 of each category first
