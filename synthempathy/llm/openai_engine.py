"""Generation through OpenAI-compatible inference servers (llama.cpp's llama-server, vLLM,
SGLang): ``generation.engine: openai``.

The cached generator (generator.py) stays in charge exactly as for the local and Ray engines:
it looks every request up in the cache, hands this engine only the misses, caches each
completion the moment it is yielded and writes outputs in request order. This engine sends the
misses, in order, to ``generation.endpoints``, ``generation.concurrency`` requests in flight on
each (an idle slot on any endpoint takes the next request, so faster servers take more), and
yields completions as they arrive:

* the official ``openai`` client retries connection errors, timeouts, 429 and 5xx
  ``generation.max_retries`` times with exponential backoff and jitter (honouring Retry-After);
* an endpoint whose request still fails leaves the rotation and the request goes to the other
  endpoints; when none is left the stage stops with one line naming the endpoints and request
  ids, after every completion that did arrive was cached (a rerun resends only the rest);
* an answer a retry cannot fix (400, 401, 404: a wrong model, key or request) stops the stage
  at once with one line naming the endpoint.

The server batches concurrent requests as it likes, so the same request may come back with
different text on another run (docs/servers.md): the cache, keyed by the served
model and its revision, is what makes a corpus version rebuild byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx2
import numpy as np
import openai

from synthempathy.errors import InputError, StageFailure
from synthempathy.llm.types import Completion, Request
from synthempathy.params import GenerationParams

log = logging.getLogger(__name__)
logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per request would drown the stage log

# Servers started without --api-key ignore the Authorization header, but the client needs a key.
NO_API_KEY = "EMPTY"
CHAT_PATH = "/chat/completions"


def served_fingerprint(generation: GenerationParams) -> dict:
    """The model part of the cache key: the served model id and the revision of its weights.
    Not the endpoints, concurrency or retries: they say where completions come from."""
    return {"served_model": generation.served_model, "model_revision": generation.model_revision}


def chat_body(request: Request, served_model: str) -> dict:
    """The JSON body of one ``POST /chat/completions``: the request's messages, sampling and seed.

    Only temperature and top_p shape sampling, as in the local engine: top_k and min_p are
    switched off explicitly (llama-server's defaults are 40 and 0.05). The repetition penalty goes
    under both names in use, llama-server's ``repeat_penalty`` and vLLM/SGLang's
    ``repetition_penalty``; each server ignores the name it does not know (vLLM logs it)."""
    return {
        "model": served_model,
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "top_k": -1,
        "min_p": 0.0,
        "repeat_penalty": request.repeat_penalty,
        "repetition_penalty": request.repeat_penalty,
    }


class MalformedAnswer(Exception):
    """A 200 answer that is not an OpenAI chat completion."""


def parse_completion(request_id: str, response: httpx2.Response) -> Completion:
    """The completion in a ``/chat/completions`` answer (text, token usage, finish reason)."""
    try:
        body = response.json()
        choice = body["choices"][0]
        return Completion(
            id=request_id,
            text=choice["message"]["content"] or "",
            prompt_tokens=int(body["usage"]["prompt_tokens"]),
            completion_tokens=int(body["usage"]["completion_tokens"]),
            finish_reason=choice.get("finish_reason") or "stop",
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        kind = response.headers.get("content-type", "no content type")
        raise MalformedAnswer(f"answered {kind} that is not a chat completion ({type(exc).__name__}: {exc})") from None


def describe(exc: BaseException, timeout_s: float) -> str:
    """One line saying why a request failed, with what the server or the socket said."""
    if isinstance(exc, openai.APITimeoutError):
        return f"no answer within generation.timeout_s={timeout_s:g}"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {_server_message(exc.response)}"
    if isinstance(exc, openai.APIConnectionError) and exc.__cause__ is not None:
        return _one_line(f"{type(exc.__cause__).__name__}: {exc.__cause__}")
    return _one_line(f"{type(exc).__name__}: {exc}")


def _server_message(response: httpx2.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return _one_line(str(message or response.text or response.reason_phrase))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_retried(exc: openai.APIError) -> bool:
    """What the client retries (and so what marks an endpoint as failing rather than the request
    as wrong): connection errors, timeouts, 408, 409, 429 and 5xx."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429) or exc.status_code >= 500)


@dataclass
class EndpointStats:
    completions: int = 0
    retries: int = 0  # resent attempts, whether the request then succeeded or not
    failed_requests: int = 0  # requests given up on here (sent to another endpoint, or not generated)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds per completion, retries included

    def summary(self, seconds: float) -> dict:
        """For logs/<stage>.json: counts, latency p50/p95 and completion tokens/s over ``seconds``."""
        p50, p95 = np.percentile(self.latencies, [50, 95]).tolist() if self.latencies else (None, None)
        return {
            "completions": self.completions,
            "retries": self.retries,
            "failed_requests": self.failed_requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_p50_s": None if p50 is None else round(p50, 3),
            "latency_p95_s": None if p95 is None else round(p95, 3),
            "tokens_per_second": round(self.completion_tokens / seconds, 2) if seconds > 0 else 0.0,
        }


class Endpoint:
    """One server: its client, its stats, and whether it is still in the rotation."""

    def __init__(self, url: str, api_key: str, generation: GenerationParams) -> None:
        self.url = url
        self.stats = EndpointStats()
        self.up = True
        self.failures: list[tuple[str, str]] = []  # (request id, reason) given up on here
        self.client = openai.AsyncOpenAI(
            base_url=url,
            api_key=api_key,
            max_retries=generation.max_retries,
            timeout=generation.timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [self._count_retry]}),
        )

    async def _count_retry(self, request: httpx2.Request) -> None:
        if request.url.path.endswith(CHAT_PATH) and request.headers.get("x-stainless-retry-count", "0") != "0":
            self.stats.retries += 1


class _WorkQueue:
    """The requests of one run that have not arrived yet. Queued ones go out in order; one that an
    endpoint failed comes back to the front for the endpoints still up, so a sender that finds the
    queue empty waits while requests are in flight elsewhere."""

    def __init__(self, requests: Sequence[Request]) -> None:
        self.queue = deque(requests)
        self.outstanding = len(requests)  # queued or in flight
        self.halted = False  # a request was refused: send nothing more
        self.changed = asyncio.Condition()

    async def take(self, endpoint: Endpoint) -> Request | None:
        """The next request for ``endpoint``, or None when there will be none for it."""
        async with self.changed:
            await self.changed.wait_for(lambda: self.queue or not self.outstanding or self.halted or not endpoint.up)
            return self.queue.popleft() if self.queue and not self.halted and endpoint.up else None

    async def done(self) -> None:
        async with self.changed:
            self.outstanding -= 1
            self.changed.notify_all()

    async def put_back(self, request: Request) -> None:
        async with self.changed:
            self.queue.appendleft(request)
            self.changed.notify_all()

    async def halt(self) -> None:
        async with self.changed:
            self.halted = True
            self.changed.notify_all()


class OpenAIEngine:
    """Requests sent to ``generation.endpoints``; started at the first miss (a fully cached run
    needs neither the servers nor the API key)."""

    name = "openai"
    replaced = 0  # servers are not ours to replace; a failing one leaves the rotation

    def __init__(self, generation: GenerationParams) -> None:
        self._generation = generation
        self.workers = len(generation.endpoints)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._endpoints: list[Endpoint] = []
        self._seconds = 0.0  # wall clock of run(), all endpoints together

    def start(self) -> None:
        """Read the API key, then check every endpoint answers GET /models with served_model."""
        if self._loop is not None:
            return
        api_key = read_api_key(self._generation.api_key_env)
        self._loop = asyncio.new_event_loop()
        self._endpoints = [Endpoint(url, api_key, self._generation) for url in self._generation.endpoints]
        try:
            self._loop.run_until_complete(_all(self._check(endpoint) for endpoint in self._endpoints))
        except BaseException:
            self.close()
            raise
        log.info(
            "openai: %d endpoint(s) serving %s, %d request(s) in flight on each",
            len(self._endpoints),
            self._generation.served_model,
            self._generation.concurrency,
        )

    async def _check(self, endpoint: Endpoint) -> None:
        model = self._generation.served_model
        where = f"generation.endpoints: {endpoint.url}"
        try:
            response = await endpoint.client.get("/models", cast_to=httpx2.Response)
        except openai.AuthenticationError as exc:
            raise InputError(
                f"{where}: rejected the API key ({describe(exc, 0)}); export the server's key in the variable named by generation.api_key_env"
            ) from None
        except openai.NotFoundError:
            raise InputError(
                f"{where}: no OpenAI API there (GET {endpoint.url}/models: HTTP 404); give the server's OpenAI base URL, e.g. http://host:8000/v1"
            ) from None
        except openai.APIError as exc:
            raise InputError(f"{where}: cannot reach it ({describe(exc, self._generation.timeout_s)}); start the server (make serve) or fix the URL") from None
        try:
            served = [entry["id"] for entry in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            kind = response.headers.get("content-type", "no content type")
            raise InputError(
                f"{where}: GET {endpoint.url}/models answered {kind}, not an OpenAI model list; is it an OpenAI-compatible server (llama-server, vLLM, SGLang) and its /v1 base URL?"
            ) from None
        if model not in served:
            raise InputError(
                f"generation.served_model={model}: {endpoint.url} serves {', '.join(map(str, served)) or 'no model'}; "
                f"set generation.served_model to the id it serves, or serve the model under that id (llama-server --alias, vllm --served-model-name)"
            )

    def run(self, units: Sequence[Sequence[Request]]) -> Iterator[tuple[str, Completion]]:
        """Yield ``(endpoint url, completion)`` as completions arrive. The event loop runs only
        while this generator waits for the next completion: requests in flight keep going on the
        servers meanwhile, their answers wait in the socket."""
        self.start()
        arrived: asyncio.Queue = asyncio.Queue()
        dispatch = self._loop.create_task(self._dispatch([r for unit in units for r in unit], arrived))
        start = time.perf_counter()
        try:
            while (item := self._loop.run_until_complete(arrived.get())) is not None:
                yield item
            self._loop.run_until_complete(dispatch)  # raises the failure, if any
        finally:
            self._seconds += time.perf_counter() - start
            if not dispatch.done():  # the consumer stopped early: cancel what is in flight
                dispatch.cancel()
                self._loop.run_until_complete(_all([dispatch], return_exceptions=True))

    async def _dispatch(self, requests: list[Request], arrived: asyncio.Queue) -> None:
        """Run ``concurrency`` senders per endpoint over one queue of the requests, in order."""
        work = _WorkQueue(requests)
        wrong: list[InputError] = []
        for endpoint in self._endpoints:  # each run gives every endpoint a fresh chance
            endpoint.up, endpoint.failures = True, []

        async def sender(endpoint: Endpoint) -> None:
            while (request := await work.take(endpoint)) is not None:
                began = time.perf_counter()
                try:
                    completion = await self._send(endpoint, request)
                except InputError as exc:
                    wrong.append(exc)
                    await work.halt()
                except (openai.APIError, MalformedAnswer) as exc:
                    reason = describe(exc, self._generation.timeout_s)
                    endpoint.failures.append((request.id, reason))
                    endpoint.stats.failed_requests += 1
                    if endpoint.up:
                        endpoint.up = False
                        log.warning("openai: %s failed request %s (%s); taking it out of the rotation", endpoint.url, request.id, reason)
                    await work.put_back(request)  # for the endpoints still up, if any
                else:
                    endpoint.stats.latencies.append(time.perf_counter() - began)
                    endpoint.stats.completions += 1
                    endpoint.stats.prompt_tokens += completion.prompt_tokens
                    endpoint.stats.completion_tokens += completion.completion_tokens
                    arrived.put_nowait((endpoint.url, completion))
                    await work.done()

        try:
            await asyncio.gather(*(sender(e) for e in self._endpoints for _ in range(self._generation.concurrency)))
        finally:
            arrived.put_nowait(None)
        if wrong:
            raise wrong[0]
        if work.outstanding:
            raise StageFailure(self._failure_message(len(requests) - work.outstanding, work.outstanding))

    async def _send(self, endpoint: Endpoint, request: Request) -> Completion:
        try:
            response = await endpoint.client.post(CHAT_PATH, cast_to=httpx2.Response, body=chat_body(request, self._generation.served_model))
        except openai.APIError as exc:
            if _is_retried(exc):
                raise
            raise InputError(
                f"generation.endpoints: {endpoint.url} refused request {request.id} ({describe(exc, 0)}); "
                f"check generation.served_model, generation.api_key_env and the request's sampling params"
            ) from None
        return parse_completion(request.id, response)

    def _failure_message(self, arrived: int, missing: int) -> str:
        retries = self._generation.max_retries
        failed = "; ".join(
            f"{e.url} failed request(s) {', '.join(i for i, _ in e.failures)} (last: {e.failures[-1][1]})" for e in self._endpoints if e.failures
        )
        return (
            f"generation failed: every endpoint failed after {retries + 1} attempt(s) per request (generation.max_retries={retries}): {failed}; "
            f"{arrived} completion(s) arrived and are cached, {missing} request(s) not generated: check the server(s), then rerun to resume"
        )

    def report(self) -> dict:
        """Per endpoint: completions, retries, failures, tokens, latency p50/p95, tokens/s."""
        return {"endpoints": {e.url: e.stats.summary(self._seconds) for e in self._endpoints}}

    def close(self) -> None:
        if self._loop is None:
            return
        self._loop.run_until_complete(_all(e.client.close() for e in self._endpoints))
        self._loop.close()
        self._loop = None


async def _all(awaitables, return_exceptions: bool = False) -> list:
    """gather, created inside the engine's loop (gather outside a running loop would bind another)."""
    return await asyncio.gather(*awaitables, return_exceptions=return_exceptions)


def read_api_key(variable: str | None) -> str:
    """The API key from the environment variable ``generation.api_key_env`` names, never from params."""
    if variable is None:
        return NO_API_KEY
    key = os.environ.get(variable)
    if not key:
        raise InputError(
            f"generation.api_key_env={variable}: the environment variable {variable} is not set; "
            f"export {variable}=<the servers' API key>, or set generation.api_key_env: null for servers without one"
        )
    return key
