"""Batched llama.cpp decoding: determinism, resume, finish reasons, backend choice, shard plans.
Real embedded model, one thread, a few tokens per request."""

import pytest
from helpers import TINY_MODEL, CrashAfter

from synthempathy.llm.batched import BatchedLlamaBackend
from synthempathy.llm.cache import LLMCache
from synthempathy.llm.generator import CachedGenerator, LocalEngine
from synthempathy.llm.llama import LlamaBackend
from synthempathy.llm.runtime import open_backend, open_generator
from synthempathy.llm.shards import ShardPlan
from synthempathy.llm.types import Request
from synthempathy.params import load_params

TOPICS = ["rain", "exams", "rent", "a dog", "a new job", "the sea", "a fight", "sleep", "a car"]
N_TOPICS = len(TOPICS)
SMALL_PLAN = ShardPlan(min_size=3, spread=2, max_size=5)  # several shards out of a few requests
FINGERPRINT = {"sha256": "test", "chat_format": None, "gpu": False, "batch_size": 3}


def make_requests(n=N_TOPICS, max_tokens=5):
    return [
        Request(
            id=f"r{i}",
            messages=(("system", "Be brief."), ("user", f"One sentence about {TOPICS[i % len(TOPICS)]}.")),
            temperature=0.9,
            top_p=0.95,
            max_tokens=max_tokens,
            repeat_penalty=1.1,
            seed=100 + i,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def backend(model_path):
    return BatchedLlamaBackend(model_path, TINY_MODEL, batch_size=3)


@pytest.fixture(scope="module")
def reference(backend):
    """make_requests() decoded once at batch size 3, in yield order."""
    return list(backend.generate(make_requests()))


class Replay:
    """A backend that hands back known completions: for tests of what the generator sends."""

    def __init__(self, completions):
        self.by_id, self.calls = {c.id: c for c in completions}, []

    def generate(self, requests):
        self.calls.append([r.id for r in requests])
        return (self.by_id[r.id] for r in requests)


def test_every_request_gets_one_completion_with_its_id(reference):
    assert sorted(c.id for c in reference) == sorted(r.id for r in make_requests())
    assert all(c.text and c.prompt_tokens > 0 and 0 < c.completion_tokens <= 5 for c in reference)
    assert {c.finish_reason for c in reference} <= {"stop", "length"}


def test_max_tokens_ends_at_length(backend):
    completions = list(backend.generate(make_requests(4, max_tokens=2)))
    assert [(c.finish_reason, c.completion_tokens) for c in completions] == [("length", 2)] * 4


def test_same_list_same_batch_size_is_byte_identical_run_to_run(backend, model_path, reference):
    requests = make_requests()
    assert list(BatchedLlamaBackend(model_path, TINY_MODEL, batch_size=3).generate(requests)) == reference
    assert list(backend.generate(requests)) == reference  # a reused backend starts from a clean state


def test_batch_of_one_reproduces_the_single_stream(model_path):
    """Same prompt tokens, sampler chain and stop rules as create_chat_completion."""
    requests = make_requests(3, max_tokens=8)
    batched = sorted(BatchedLlamaBackend(model_path, TINY_MODEL, batch_size=1).generate(requests), key=lambda c: c.id)
    assert batched == list(LlamaBackend(model_path, TINY_MODEL).generate(requests))


def test_killed_run_resumes_to_the_uninterrupted_outputs(tmp_path, backend, model_path):
    requests = make_requests()
    shards = [[requests[i].id for i in shard] for shard in SMALL_PLAN.split([r.id for r in requests])]
    assert len(shards) >= 2
    reference = CachedGenerator(LocalEngine(lambda: backend), LLMCache(tmp_path / "a"), FINGERPRINT, SMALL_PLAN).generate(requests)

    crashing = CrashAfter(backend, len(shards[0]) + 1)  # dies inside the second shard
    with pytest.raises(KeyboardInterrupt):
        CachedGenerator(LocalEngine(lambda: crashing), LLMCache(tmp_path / "b"), FINGERPRINT, SMALL_PLAN).generate(requests)
    resumed_backend = CrashAfter(BatchedLlamaBackend(model_path, TINY_MODEL, batch_size=3), 99)  # a new process
    generator = CachedGenerator(LocalEngine(lambda: resumed_backend), LLMCache(tmp_path / "b"), FINGERPRINT, SMALL_PLAN)
    assert generator.generate(requests) == reference
    assert resumed_backend.calls == shards[1:]  # whole shards, finished one skipped
    assert generator.stats.recomputed == 1 and generator.stats.generated == len(requests) - len(shards[0]) - 1


def test_cache_keys_name_the_shard(tmp_path, reference):
    """A request decoded in other company is not served from the cache: it is generated anew."""
    requests = make_requests()
    CachedGenerator(LocalEngine(lambda: Replay(reference)), LLMCache(tmp_path), FINGERPRINT, SMALL_PLAN).generate(requests)
    fewer = requests[:2] + requests[3:]
    generator = CachedGenerator(LocalEngine(lambda: Replay(reference)), LLMCache(tmp_path), FINGERPRINT, SMALL_PLAN)
    generator.generate(fewer)
    before = {tuple(r.id for r in requests[s.start : s.stop]) for s in SMALL_PLAN.split([r.id for r in requests])}
    changed = sum(len(s) for s in SMALL_PLAN.split([r.id for r in fewer]) if tuple(r.id for r in fewer[s.start : s.stop]) not in before)
    assert changed > 0 and generator.stats.generated == changed and generator.stats.cached == len(fewer) - changed


def test_batch_size_picks_the_backend_and_batch_one_is_the_single_stream(tmp_path, model_path):
    params = load_params().model_copy(update={"model": TINY_MODEL})
    one = params.model_copy(update={"generation": params.generation.model_copy(update={"batch_size": 1})})
    requests = make_requests(3)
    assert open_generator(one, LLMCache(tmp_path)).generate(requests) == list(LlamaBackend(model_path, TINY_MODEL).generate(requests))
    four = params.model_copy(update={"generation": params.generation.model_copy(update={"batch_size": 4})})
    assert isinstance(open_backend(four, model_path), BatchedLlamaBackend)


def test_shard_plan_cuts_depend_on_ids_only_and_edits_stay_local():
    plan = ShardPlan.for_batch(4, 16)
    ids = [f"sad-{i}-s{k}" for i in range(300) for k in range(3)]
    shards = plan.split(ids)
    assert [i for shard in shards for i in shard] == list(range(len(ids)))
    assert all(plan.min_size <= len(s) <= plan.max_size for s in shards[:-1])
    edited = ids[:450] + ids[451:]  # one story dropped upstream
    before = {tuple(ids[i] for i in s) for s in shards}
    after = [tuple(edited[i] for i in s) for s in plan.split(edited)]
    assert sum(s not in before for s in after) <= 3
