"""Does llama-server return the same text for the same request and seed? The same brainstorm
requests (the openai engine's request bodies) go to one `llama-server -np 8` (the embedded
model, as `make serve` starts it) several ways, and the texts are compared request by request:

* one request at a time, twice (the second pass in reverse order), with llama-server's default
  prompt cache (``cache_prompt: true``, reusing a slot's KV cache for a shared prefix) and without;
* all requests in flight at once (continuous batching over the slots) vs one at a time, without
  the prompt cache.

    python -m benchmarks.bench_server_determinism   # writes results/server_determinism.md
    python -m benchmarks.bench_server_determinism --smoke
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import openai

from benchmarks.bench_generation import benchmark_requests
from benchmarks.common import busy, header, table, write_result
from synthempathy.llm.models import resolve_model_path
from synthempathy.llm.openai_engine import NO_API_KEY, chat_body
from synthempathy.llm.serve import LLAMA_SERVER, free_port, launch, server_command
from synthempathy.llm.types import Request
from synthempathy.params import load_params

HOST = "127.0.0.1"


def texts(client: openai.OpenAI, model: str, requests: list[Request], cache_prompt: bool, in_flight: int) -> dict[str, str]:
    """Each request's text, sent ``in_flight`` at a time in the given order."""

    def send(request: Request) -> tuple[str, str]:
        body = {**chat_body(request, model), "cache_prompt": cache_prompt}
        answer = client.post("/chat/completions", cast_to=httpx2.Response, body=body).json()
        return request.id, answer["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(in_flight) as pool:
        return dict(pool.map(send, requests))


def same(a: dict[str, str], b: dict[str, str]) -> str:
    return f"{sum(a[k] == b[k] for k in a)}/{len(a)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 short requests; no results file")
    args = parser.parse_args()
    n, max_tokens, slots = (2, 4, 2) if args.smoke else (8, 48, 8)
    params = load_params()
    params = params.model_copy(update={"model": params.model.model_copy(update={"n_threads": 1})})
    model = params.generation.served_model
    requests = benchmark_requests(params, n, max_tokens)
    busy_before = busy()
    port = free_port()
    with tempfile.TemporaryDirectory() as work, (Path(work) / "llama-server.log").open("wb") as log:
        server = launch(server_command(LLAMA_SERVER, resolve_model_path(params.model.path).resolve(), params, HOST, port, slots), HOST, port, log)
        try:
            client = openai.OpenAI(base_url=f"http://{HOST}:{port}/v1", api_key=NO_API_KEY, max_retries=0)
            rows = []
            for cache_prompt in (True, False):
                first = texts(client, model, requests, cache_prompt, 1)
                again = texts(client, model, requests[::-1], cache_prompt, 1)
                rows.append((f"one at a time, twice; cache_prompt={str(cache_prompt).lower()}", same(first, again)))
            batched = texts(client, model, requests, False, len(requests))
            rows.append((f"{len(requests)} in flight vs one at a time; cache_prompt=false", same(batched, first)))
        finally:
            server.terminate()
            server.wait()
    for setting, result in rows:
        print(f"server determinism: {setting}: same text {result}")
    if not args.smoke:
        write_result(
            "server_determinism.md",
            header("llama-server: same request, same seed, same text?", busy_before)
            + f"- `llama-server -np {slots}` (CPU build, 1 thread), embedded SmolLM2-135M; {n} brainstorm requests "
            f"(bench_generation's), max_tokens={max_tokens}, each with its own seed, sent as the openai engine sends them\n\n"
            + table("| how | same text |", rows)
            + "\n",
        )


if __name__ == "__main__":
    main()
