"""generation.engine: openai. First the pure parts (request body, cache key, params, stats); then
real llama-server processes on 127.0.0.1 serving the embedded model (a few requests of 16 tokens):
the pipeline through `dvc exp run`, a killed driver that resends only what is missing, a killed
server, two endpoints sharing the load, injected faults, and one-line errors for bad endpoints."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx2
import pytest
import yaml
from helpers import TINY, make_repo, repo_env, run, stage_argv
from servers import HtmlServer, LlamaServer, Proxy, free_port

from synthempathy.errors import InputError
from synthempathy.generation import build_requests, expand_scenarios, growth_order
from synthempathy.io import read_jsonl, write_jsonl_atomic
from synthempathy.llm.cache import LLMCache, cache_key
from synthempathy.llm.models import resolve_model_path
from synthempathy.llm.openai_engine import EndpointStats, MalformedAnswer, OpenAIEngine, chat_body, parse_completion, served_fingerprint
from synthempathy.llm.runtime import model_fingerprint
from synthempathy.llm.serve import LLAMA_SERVER, check_revision, loopback_address
from synthempathy.llm.types import Request
from synthempathy.params import load_params
from synthempathy.prompts import load_prompt

ROOT = Path(__file__).resolve().parents[1]
REQUEST = Request("sad-1-s0", (("system", "Be brief."), ("user", "Tell a story.")), 0.9, 0.9, 16, 1.1, 1234)
SHORT = {**TINY, "brainstorm": {"n_stories": 1, "max_tokens": 16}, "rewrite": {"max_tokens": 16}, "respond": {"max_tokens": 16}}
SCENARIOS = [  # for the stage-level tests: 8 brainstorm requests
    {"id": f"sad-{i}", "text": text, "category": "Work", "severity": 5.0}
    for i, text in enumerate(
        [
            "my boss yelled at me in front of everyone",
            "I have three exams next week",
            "my landlord is raising the rent again",
            "my car broke down on the way to work",
            "I had a fight with my best friend",
            "my dog is sick and the vet bills keep growing",
            "I moved to a new city and know nobody",
            "I was laid off last Friday",
        ],
        start=1,
    )
]

BRAINSTORM = [sys.executable, "-m", "stages.brainstorm", *stage_argv("brainstorm")]
needs_server = pytest.mark.skipif(not LLAMA_SERVER.is_file(), reason=f"{LLAMA_SERVER} not built (make llama-tools)")


# --- pure parts ---------------------------------------------------------------------------------


def test_request_body_carries_the_sampling_params_and_the_seed():
    body = chat_body(REQUEST, "smollm2")
    assert body["model"] == "smollm2" and body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell a story."}]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.9, 0.9, 16, 1234)
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.1  # llama-server's name, vLLM/SGLang's name
    assert (body["top_k"], body["min_p"]) == (-1, 0.0)  # off, as in the local engine (llama-server defaults: 40, 0.05)


def test_cache_key_names_the_served_model_not_where_it_is_served():
    generation = load_params().generation
    elsewhere = generation.model_copy(
        update=dict(endpoints=("http://10.0.0.7:8000/v1", "http://10.0.0.8:8000/v1"), concurrency=64, max_retries=9, timeout_s=5, api_key_env="KEY")
    )
    assert cache_key(served_fingerprint(elsewhere), REQUEST) == cache_key(served_fingerprint(generation), REQUEST)
    for changed in ({"served_model": "mistral-7b"}, {"model_revision": "sha256:0"}):
        assert cache_key(served_fingerprint(generation.model_copy(update=changed)), REQUEST) != cache_key(served_fingerprint(generation), REQUEST)
    local = model_fingerprint(load_params(), generation.model_revision.removeprefix("sha256:"))  # the same GGUF, in-process
    assert cache_key(local, REQUEST) != cache_key(served_fingerprint(generation), REQUEST)


def test_shipped_revision_is_the_embedded_gguf_that_make_serve_serves():
    params = load_params()
    gguf = resolve_model_path(params.model.path)
    check_revision(params, gguf)  # `make serve` with the shipped params.yaml serves what the cache key names
    stale = params.model_copy(update={"generation": params.generation.model_copy(update={"model_revision": "sha256:0"})})
    with pytest.raises(
        InputError, match=r"generation.model_revision=sha256:0: make serve serves model.path=default .*; set generation.model_revision=sha256:[0-9a-f]{64}$"
    ):
        check_revision(stale, gguf)


@pytest.mark.parametrize("url", ["http://10.0.0.7:8080/v1", "http://example.com:8080/v1", "http://127.0.0.1/v1"])
def test_make_serve_serves_loopback_addresses_only(url):
    with pytest.raises(InputError, match="make serve starts a server on this machine only"):
        loopback_address(url)
    assert loopback_address("http://localhost:8081/v1") == ("127.0.0.1", 8081)


def test_an_answer_that_is_not_a_chat_completion_is_malformed():
    ok = httpx2.Response(
        200, json={"choices": [{"message": {"content": "Hi."}, "finish_reason": "length"}], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
    )
    assert parse_completion("a", ok).finish_reason == "length" and parse_completion("a", ok).completion_tokens == 2
    for bad in (httpx2.Response(200, text="<html>", headers={"Content-Type": "text/html"}), httpx2.Response(200, json={"choices": []})):
        with pytest.raises(MalformedAnswer):
            parse_completion("a", bad)


def test_endpoint_summary_has_latency_percentiles_and_rate():
    stats = EndpointStats(completions=4, completion_tokens=80, latencies=[1.0, 2.0, 3.0, 4.0])
    summary = stats.summary(seconds=10)
    assert (summary["latency_p50_s"], summary["latency_p95_s"], summary["tokens_per_second"]) == (2.5, 3.85, 8.0)
    assert EndpointStats().summary(0)["latency_p50_s"] is None


# --- real servers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """llama-server on the embedded model, 4 slots, one thread."""
    started = LlamaServer(tmp_path_factory.mktemp("server"), slots=4)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("template"), SHORT)


@pytest.fixture
def repo(template, tmp_path):
    """A copy of the tiny repo with 8 scenarios, ready for the brainstorm stage."""
    copy = Path(shutil.copytree(template, tmp_path / "repo", symlinks=True))
    write_jsonl_atomic(copy / "data/scenarios.jsonl", SCENARIOS)
    return copy


def brainstorm(repo: Path) -> subprocess.CompletedProcess:
    return run(BRAINSTORM, repo, timeout=600)


def set_generation(repo: Path, **values) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generation"].update({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def brainstorm_requests(repo: Path) -> list[Request]:
    """The stage's requests, in the order it sends them."""
    params = load_params(repo / "params.yaml")
    stubs = expand_scenarios(read_jsonl(repo / "data/scenarios.jsonl"), params.brainstorm.n_stories)
    return build_requests(growth_order(stubs, params.seed), load_prompt("brainstorm"), params.brainstorm, params.seed, "brainstorm")


def assert_all_written_in_record_order(repo: Path) -> None:
    """Every story stub is kept or rejected, and the kept ones are in the scenarios' order."""
    records = [stub["id"] for stub in expand_scenarios(SCENARIOS, 1)]
    kept, rejected = ids_of(repo / "data/stories.jsonl"), ids_of(repo / "data/rejected/brainstorm.jsonl")
    assert sorted(kept + rejected) == sorted(records) and kept == [i for i in records if i in set(kept)]


def cached_count(repo: Path) -> int:
    try:
        return sqlite3.connect(repo / ".cache/llm/completions.sqlite3").execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def wait_until(condition, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def ids_of(path: Path) -> list[str]:
    return [record["id"] for record in read_jsonl(path)]


@needs_server
def test_dvc_exp_run_generates_stories_explanations_and_responses_through_the_server(template, server, tmp_path):
    repo = Path(shutil.copytree(template, tmp_path / "repo", symlinks=True))
    proxy = Proxy(server.url)
    result = run(
        ["dvc", "exp", "run", "respond", "-S", "generation.engine=openai", "-S", f"generation.endpoints=[{proxy.url}]", "-S", "generation.concurrency=4"],
        repo,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    stages = ("brainstorm", "rewrite", "respond")
    metrics = {stage: json.loads((repo / f"metrics/{stage}.json").read_text()) for stage in stages}
    assert metrics["brainstorm"]["records_in"] == 9 and read_jsonl(repo / "data/pairs.jsonl")
    requests = sum(m["records_in"] for m in metrics.values())
    assert len(proxy.sent) == len(set(proxy.sent)) == len(proxy.delivered) == requests  # each request sent once
    log = json.loads((repo / "logs/respond.json").read_text())
    endpoint = log["engine_report"]["endpoints"][proxy.url]
    assert log["engine"] == "openai" and endpoint["completions"] == metrics["respond"]["records_in"] and endpoint["retries"] == 0
    assert endpoint["latency_p95_s"] >= endpoint["latency_p50_s"] > 0 and endpoint["tokens_per_second"] > 0
    # Where completions come from reruns nothing; which model makes them reruns the LLM stages.
    set_generation(repo, endpoints=[server.url], concurrency=1, max_retries=5)
    assert json.loads(run(["dvc", "status", "--with-deps", "respond", "--json"], repo).stdout) == {}
    set_generation(repo, endpoints=[proxy.url], model_revision="sha256:another")
    assert set(json.loads(run(["dvc", "status", "--with-deps", "respond", "--json"], repo).stdout)) == {"brainstorm", "rewrite", "respond"}


@needs_server
def test_killed_driver_resends_only_the_missing_requests(repo, server):
    proxy = Proxy(server.url)
    set_generation(repo, engine="openai", endpoints=[proxy.url], concurrency=2)
    driver = subprocess.Popen(BRAINSTORM, cwd=repo, env=repo_env(repo), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: cached_count(repo) >= 2 or driver.poll() is not None, "2 cached completions")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (repo / "data/stories.jsonl").exists()
    requests = brainstorm_requests(repo)
    cache, fingerprint = LLMCache(repo / ".cache/llm"), served_fingerprint(load_params(repo / "params.yaml").generation)
    cached = {r.seed for r in requests if cache.get(cache_key(fingerprint, r), r.id) is not None}
    assert 2 <= len(cached) < len(requests)
    sent_before = len(proxy.sent)
    resumed = brainstorm(repo)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(proxy.sent[sent_before:]) == sorted(r.seed for r in requests if r.seed not in cached)  # only the missing ones
    assert_all_written_in_record_order(repo)
    log = json.loads((repo / "logs/brainstorm.json").read_text())
    assert (log["cached"], log["generated"]) == (len(cached), len(requests) - len(cached))


@needs_server
def test_killed_server_stops_the_stage_after_retries_and_keeps_every_completion(repo, tmp_path):
    server = LlamaServer(tmp_path, slots=2)
    proxy = Proxy(server.url)
    set_generation(repo, engine="openai", endpoints=[proxy.url], concurrency=2, max_retries=1)
    driver = subprocess.Popen(BRAINSTORM, cwd=repo, env=repo_env(repo), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(proxy.delivered) >= 2, "2 completions")
        server.kill()
        _, stderr = driver.communicate(timeout=120)
    finally:
        driver.kill()
        server.stop()
    assert driver.returncode == 1
    [error] = error_lines(stderr)
    requests = brainstorm_requests(repo)
    failed = [r for r in requests if r.seed in set(proxy.sent) - set(proxy.delivered)]
    assert error.startswith(
        f"error: generation failed: every endpoint failed after 2 attempt(s) per request (generation.max_retries=1): {proxy.url} failed request(s) "
    )
    assert failed and all(r.id in error for r in failed) and f"{len(proxy.delivered)} completion(s) arrived and are cached" in error
    assert set(Counter(s for s in proxy.sent if s not in proxy.delivered).values()) == {2}  # each failed request: 1 + max_retries attempts
    assert cached_count(repo) == len(proxy.delivered)  # every completion that arrived is in the cache
    assert not (repo / "data/stories.jsonl").exists()
    # A new server picks up where the dead one stopped.
    revived = LlamaServer(tmp_path, slots=2)
    try:
        again = Proxy(revived.url)
        set_generation(repo, endpoints=[again.url])
        assert brainstorm(repo).returncode == 0
    finally:
        revived.stop()
    assert sorted(again.sent) == sorted(r.seed for r in requests if r.seed not in proxy.delivered)


@needs_server
def test_two_endpoints_share_the_load(repo, server, tmp_path):
    second = LlamaServer(tmp_path, slots=2)
    try:
        first_proxy, second_proxy = Proxy(server.url), Proxy(second.url)
        set_generation(repo, engine="openai", endpoints=[first_proxy.url, second_proxy.url], concurrency=2)
        result = brainstorm(repo)
    finally:
        second.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    requests = brainstorm_requests(repo)
    assert first_proxy.delivered and second_proxy.delivered
    assert sorted(first_proxy.delivered + second_proxy.delivered) == sorted(r.seed for r in requests)
    endpoints = json.loads((repo / "logs/brainstorm.json").read_text())["engine_report"]["endpoints"]
    assert {url: e["completions"] for url, e in endpoints.items()} == {
        first_proxy.url: len(first_proxy.delivered),
        second_proxy.url: len(second_proxy.delivered),
    }
    assert_all_written_in_record_order(repo)


@needs_server
def test_retries_ride_out_429_500_and_a_truncated_answer_and_outputs_keep_id_order(repo, server):
    requests = brainstorm_requests(repo)
    seeds = [r.seed for r in requests]
    # The first request answers after 3 s, so later ones arrive before it; three others fail once.
    proxy = Proxy(server.url, faults={seeds[0]: ["slow"], seeds[2]: ["429"], seeds[3]: ["500"], seeds[4]: ["truncate"]})
    set_generation(repo, engine="openai", endpoints=[proxy.url], concurrency=2, max_retries=1)
    result = brainstorm(repo)
    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.delivered.index(seeds[0]) > proxy.delivered.index(seeds[1])
    assert_all_written_in_record_order(repo)
    endpoint = json.loads((repo / "logs/brainstorm.json").read_text())["engine_report"]["endpoints"][proxy.url]
    assert (endpoint["completions"], endpoint["retries"], endpoint["failed_requests"]) == (len(requests), 3, 0)
    assert sorted(proxy.sent) == sorted(seeds + seeds[2:5]) and sorted(proxy.delivered) == sorted(seeds)


@needs_server
@pytest.mark.parametrize("case", ["unreachable", "wrong model", "html", "missing key", "404 on a request"])
def test_bad_endpoint_is_one_line_naming_it_and_writes_nothing(repo, server, case):
    first = brainstorm_requests(repo)[0]  # the first request sent
    html, proxy = HtmlServer(), Proxy(server.url, faults={first.seed: ["404"]})
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    settings, fragment = {
        "unreachable": ({"endpoints": [nowhere]}, f"generation.endpoints: {nowhere}: cannot reach it (ConnectError: "),
        "wrong model": (
            {"endpoints": [server.url], "served_model": "mistral-7b"},
            f"generation.served_model=mistral-7b: {server.url} serves smollm2-135m-instruct; ",
        ),
        "html": ({"endpoints": [html.url]}, f"generation.endpoints: {html.url}: GET {html.url}/models answered text/html, not an OpenAI model list"),
        "missing key": (
            {"endpoints": [server.url], "api_key_env": "SYNTHEMPATHY_TEST_UNSET_KEY"},
            "generation.api_key_env=SYNTHEMPATHY_TEST_UNSET_KEY: the environment variable SYNTHEMPATHY_TEST_UNSET_KEY is not set",
        ),
        "404 on a request": (
            {"endpoints": [proxy.url]},
            f"generation.endpoints: {proxy.url} refused request {first.id} (HTTP 404: The model `x` does not exist.)",
        ),
    }[case]
    set_generation(repo, engine="openai", concurrency=1, max_retries=0, **settings)
    result = brainstorm(repo)
    html.close()
    proxy.close()
    assert result.returncode == 2
    [error] = error_lines(result.stderr)
    assert fragment in error
    assert not (repo / "data/stories.jsonl").exists() and not (repo / "logs/brainstorm.json").exists()


@needs_server
def test_the_api_key_comes_from_the_variable_named_by_api_key_env(tmp_path, monkeypatch):
    server = LlamaServer(tmp_path, slots=1, extra=("--api-key", "right-key"))
    try:
        generation = load_params().generation.model_copy(update=dict(endpoints=(server.url,), api_key_env="SYNTHEMPATHY_TEST_KEY", max_retries=0))
        monkeypatch.setenv("SYNTHEMPATHY_TEST_KEY", "wrong-key")
        with pytest.raises(InputError, match=rf"^generation.endpoints: {server.url}: rejected the API key \(HTTP 401: "):
            OpenAIEngine(generation).start()
        monkeypatch.setenv("SYNTHEMPATHY_TEST_KEY", "right-key")
        engine = OpenAIEngine(generation)
        try:
            [(where, completion)] = list(engine.run([[REQUEST]]))
        finally:
            engine.close()
    finally:
        server.stop()
    assert where == server.url and completion.id == REQUEST.id and 0 < completion.completion_tokens <= REQUEST.max_tokens
