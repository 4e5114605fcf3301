"""The cached generator every stage uses: cache hits are free, misses go to the backend,
and each completion is cached the moment it finishes.

With a shard plan (batched backends, see shards.py), misses go to the backend in whole shards,
one ``generate`` call per shard, and completions are cached under their shard's digest.

Where the units run is the engine's business: in this process (:class:`LocalEngine`), or on
Ray actors (ray_engine.py). Either way this process alone reads and writes the cache."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tqdm import tqdm

from synthempathy.llm.cache import LLMCache, cache_key
from synthempathy.llm.shards import ShardPlan, shard_digest
from synthempathy.llm.types import Backend, Completion, Engine, Request

if TYPE_CHECKING:
    from synthempathy.llm.chat import ChatPrompter

log = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    requests: int = 0
    cached: int = 0
    generated: int = 0
    recomputed: int = 0  # cached completions decoded again because their shard had a miss
    completion_tokens: int = 0  # of every decoded completion (generated and recomputed)
    seconds: float = 0.0  # wall clock of the decoding, all workers together
    finish_reasons: dict = field(default_factory=dict)
    engine: str = "local"
    workers: int = 1
    per_worker: dict = field(default_factory=dict)  # decoded completions per worker
    workers_replaced: int = 0  # workers lost mid-run (their units were sent again)
    engine_report: dict = field(default_factory=dict)  # the engine's own observations (Engine.report)
    model: dict = field(default_factory=dict)  # GGUF facts (chat.ChatPrompter.facts)

    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


class LocalEngine:
    """Units decoded one after another by a backend in this process, loaded at the first unit."""

    name = "local"
    workers = 1
    replaced = 0

    def __init__(self, backend_factory: Callable[[], Backend]) -> None:
        self._backend_factory = backend_factory
        self._backend: Backend | None = None

    def start(self) -> None:
        if self._backend is None:
            self._backend = self._backend_factory()

    def run(self, units: Sequence[Sequence[Request]]) -> Iterator[tuple[str, Completion]]:
        self.start()
        for unit in units:
            for completion in self._backend.generate(unit):
                yield self.name, completion

    def report(self) -> dict:
        return {}

    def close(self) -> None:
        self._backend = None


class CachedGenerator:
    """``generate(requests) -> completions`` in request order, via the cache and an engine.
    The engine loads its model only when something is not cached."""

    def __init__(
        self,
        engine: Engine,
        cache: LLMCache,
        model_fingerprint: dict,
        shard_plan: ShardPlan | None = None,  # None: the backend decodes each request alone
        prompter: ChatPrompter | None = None,  # None: requests are sent as they are, unchecked
    ) -> None:
        self.engine = engine
        self._cache = cache
        self._fingerprint = model_fingerprint
        self._shard_plan = shard_plan
        self._prompter = prompter
        self.stats = GenerationStats(engine=self.engine.name, workers=self.engine.workers, model=prompter.facts if prompter else {})

    def _keys_and_shards(self, requests: Sequence[Request], segments: Sequence[Hashable] | None) -> tuple[dict[str, str], list[list[Request]]]:
        """Cache key per request id, and the groups the backend must decode together."""
        keys = {r.id: cache_key(self._fingerprint, r) for r in requests}
        if len(keys) != len(requests):
            raise ValueError("request ids must be unique")
        if self._shard_plan is None:
            return keys, [[r] for r in requests]
        shards = [[requests[i] for i in shard] for shard in self._shard_plan.split([r.id for r in requests], segments)]
        for shard in shards:
            fingerprint = {**self._fingerprint, "shard": shard_digest([keys[r.id] for r in shard])}
            keys.update({r.id: cache_key(fingerprint, r) for r in shard})
        return keys, shards

    def generate(self, requests: Sequence[Request], desc: str = "generate", segments: Sequence[Hashable] | None = None) -> list[Completion]:
        """Completions in request order. ``desc`` names the stage (progress bar, log, errors);
        ``segments`` (one label per request) forces a shard cut wherever the label changes (shards.py)."""
        if self._prompter is not None:
            requests = self._prompter.prepare(requests)  # as rendered: the cache keys hold what the model is sent
        keys, shards = self._keys_and_shards(requests, segments)
        done: dict[str, Completion] = {}
        for request in requests:
            hit = self._cache.get(keys[request.id], request.id)
            if hit is not None:
                done[request.id] = hit
        n_misses = len(requests) - len(done)
        # A shard holding a miss is decoded whole: its cached members are decoded again (and must
        # come out the same) so that the misses meet the batch-mates of an uninterrupted run.
        units = [shard for shard in shards if any(r.id not in done for r in shard)]
        n_decode = sum(len(unit) for unit in units)
        self.stats.requests += len(requests)
        self.stats.cached += len(done)
        log.info("%s: %d requests, %d cached, %d to generate, %d to decode again", desc, len(requests), len(done), n_misses, n_decode - n_misses)
        if units and self._prompter is not None:
            self._prompter.check_budget([r for unit in units for r in unit], desc)
        if units:
            self.engine.start()  # model loading (and Ray's start) stays out of the timing
            start = time.perf_counter()
            tokens = 0
            per_worker = self.stats.per_worker
            with tqdm(total=n_decode, desc=desc, unit="item", dynamic_ncols=True) as bar:
                for worker, completion in self.engine.run(units):
                    self._keep(keys[completion.id], completion, done)
                    tokens += completion.completion_tokens
                    per_worker[worker] = per_worker.get(worker, 0) + 1
                    bar.update(1)
                    bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):.1f}")
            self.stats.seconds += time.perf_counter() - start
            self.stats.generated += n_misses
            self.stats.recomputed += n_decode - n_misses
            self.stats.completion_tokens += tokens
            self.stats.workers_replaced = self.engine.replaced
            self.stats.engine_report = self.engine.report()
            if self.engine.workers > 1:
                log.info("%s: completions per worker %s, %d worker(s) replaced", desc, per_worker, self.engine.replaced)
        for completion in done.values():
            reasons = self.stats.finish_reasons
            reasons[completion.finish_reason] = reasons.get(completion.finish_reason, 0) + 1
        return [done[r.id] for r in requests]

    def close(self) -> None:
        """Release the engine (Ray actors, and Ray itself if the engine started it)."""
        self.engine.close()

    def _keep(self, key: str, completion: Completion, done: dict[str, Completion]) -> None:
        """Cache a new completion; a recomputed one must equal its cached copy, which is kept."""
        cached = done.get(completion.id)
        if cached is None:
            self._cache.put(key, completion)
            done[completion.id] = completion
        elif cached != completion:
            log.warning("%s: decoded again with a different result; this machine does not reproduce the cached shard", completion.id)
