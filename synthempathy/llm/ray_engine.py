"""Generation on a Ray cluster: ``generation.workers`` actors, each holding one llama.cpp backend.

The cached generator (generator.py) stays in charge: it computes the cache keys and the units
(whole shards at batch_size > 1, lone requests at 1) exactly as for the local engine, and it is
the only reader and writer of the cache. This engine only carries units to actors and
completions back:

* units go out in their given order, one at a time to each idle worker; completions come back
  per unit as it finishes (``ray.wait``) and the generator caches them at once, so a killed
  driver loses only the units in flight;
* an actor runs the same backend ``generate`` on a unit as the local engine does, and a unit
  is decoded in isolation, so which worker runs it never changes a byte of its completions;
* a worker that dies (``RayActorError``) is replaced and its unit sent again; a unit whose
  worker died ``generation.max_retries + 1`` times fails the stage with one error naming it.

``import ray`` happens only when this engine starts: the local engine needs no Ray.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from synthempathy.errors import InputError, StageFailure
from synthempathy.llm.types import Backend, Completion, Request
from synthempathy.params import GenerationParams, ModelParams

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # completions are small; Ray's default takes 30% of RAM


class WorkerLost(Exception):
    """The worker running ``ticket``'s unit died; the unit never completed."""

    def __init__(self, ticket: Hashable, reason: str) -> None:
        super().__init__(reason)
        self.ticket = ticket


class WorkerPool(Protocol):
    """Workers in numbered slots; a slot runs one unit at a time."""

    size: int

    def submit(self, slot: int, unit: Sequence[Request]) -> Hashable: ...

    def wait(self, tickets: Sequence[Hashable]) -> tuple[Hashable, list[Completion]]:
        """The first of ``tickets`` to finish and its completions; raises WorkerLost for a dead
        worker, and a unit's own error (e.g. a prompt longer than n_ctx) as it is."""
        ...

    def replace(self, slot: int) -> None: ...


def schedule(pool: WorkerPool, units: Sequence[Sequence[Request]], max_retries: int) -> Iterator[tuple[str, Completion]]:
    """Run every unit on the pool; yield ``(worker, completion)`` as units finish.

    Units are handed out in order to the lowest idle slot; a unit whose worker died goes back to
    the front of the queue on a fresh worker, and the run fails once a unit has lost
    ``max_retries + 1`` workers."""
    queue = deque(range(len(units)))
    idle = list(range(pool.size))
    running: dict[Hashable, tuple[int, int]] = {}  # ticket -> (slot, unit index)
    failures = [0] * len(units)

    def dispatch() -> None:
        idle.sort()
        while idle and queue:
            slot, index = idle.pop(0), queue.popleft()
            running[pool.submit(slot, units[index])] = (slot, index)

    dispatch()
    while running:
        try:
            ticket, completions = pool.wait(list(running))
        except WorkerLost as lost:
            slot, index = running.pop(lost.ticket)
            failures[index] += 1
            ids = ", ".join(r.id for r in units[index])
            if failures[index] > max_retries:
                raise StageFailure(
                    f"generation failed: the Ray worker running request(s) {ids} died {failures[index]} times "
                    f"(generation.max_retries={max_retries}; last: {lost}); check the worker logs "
                    "(/tmp/ray/session_latest/logs) for memory or GPU errors, or raise generation.max_retries"
                ) from None
            log.warning("worker-%d died (%s); replacing it and sending request(s) %s again", slot, lost, ids)
            pool.replace(slot)
            queue.appendleft(index)
            idle.append(slot)
            dispatch()
            continue
        slot, _ = running.pop(ticket)
        idle.append(slot)
        dispatch()  # the worker starts its next unit while the driver caches this one
        for completion in completions:
            yield f"worker-{slot}", completion


class GenerationWorker:
    """The body of a Ray actor: loads the backend once (at creation), then decodes units.

    A load error is kept and raised by each call, so it reaches the driver as the error it is
    (e.g. a one-line InputError for a corrupt GGUF) instead of as a dead actor."""

    def __init__(self, backend_factory: Callable[[], Backend]) -> None:
        faulthandler.enable()  # a crash in llama.cpp leaves its stack in the worker's log
        self._backend: Backend | None = None
        self._error: Exception | None = None
        try:
            self._backend = backend_factory()
        except Exception as exc:  # noqa: BLE001 - re-raised by every call
            self._error = exc

    def ready(self) -> str:
        """Where this worker runs, once its model is loaded."""
        self._check()
        return f"{socket.gethostname()} pid {os.getpid()} GPU {os.environ.get('CUDA_VISIBLE_DEVICES') or 'none'}"

    def generate(self, unit: Sequence[Request]) -> list[Completion]:
        self._check()
        return list(self._backend.generate(unit))

    def _check(self) -> None:
        if self._error is not None:
            raise self._error


class RayPool:
    """``size`` GenerationWorker actors, created with the same options and backend factory."""

    def __init__(self, backend_factory: Callable[[], Backend], options: dict, size: int) -> None:
        import ray

        self._ray = ray
        self._actor = ray.remote(GenerationWorker).options(**options)
        self._factory = backend_factory
        self.size = size
        self.replaced = 0
        self.actors = [self._actor.remote(backend_factory) for _ in range(size)]

    def ready(self, max_retries: int) -> list[str]:
        """Wait until every worker has loaded its model (all load at once); where each one runs.
        A worker that dies meanwhile is replaced; the stage fails after ``max_retries`` such deaths."""
        pending = {slot: actor.ready.remote() for slot, actor in enumerate(self.actors)}
        where: dict[int, str] = {}
        while pending:
            slot, ref = next(iter(pending.items()))
            try:
                where[slot] = self._get(ref, ref)
                del pending[slot]
            except WorkerLost as lost:
                if self.replaced >= max_retries:
                    raise StageFailure(
                        f"generation failed: Ray workers died while loading the model {self.replaced + 1} times (last: {lost}); "
                        "check that model.path is readable on every node and fits its memory"
                    ) from None
                log.warning("worker-%d died while loading the model (%s); replacing it", slot, lost)
                self.replace(slot)
                pending[slot] = self.actors[slot].ready.remote()
        return [where[slot] for slot in range(self.size)]

    def submit(self, slot: int, unit: Sequence[Request]) -> Hashable:
        return self.actors[slot].generate.remote(list(unit))

    def wait(self, tickets: Sequence[Hashable]) -> tuple[Hashable, list[Completion]]:
        ready, _ = self._ray.wait(list(tickets), num_returns=1)
        return ready[0], self._get(ready[0], ticket=ready[0])

    def _get(self, ref, ticket: Hashable):
        errors = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except errors.RayTaskError as exc:  # the unit's own error (or a load error), raised as the local engine would
            raise exc.cause from None
        except (errors.RayActorError, errors.WorkerCrashedError, errors.OutOfMemoryError, errors.NodeDiedError) as exc:
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise WorkerLost(ticket, reason) from None

    def replace(self, slot: int) -> None:
        self._ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self._actor.remote(self._factory)
        self.replaced += 1

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)


class RayEngine:
    """``generation.workers`` llama.cpp actors on the Ray cluster at ``generation.ray_address``;
    started at the first unit (a fully cached run never touches Ray)."""

    name = "ray"

    def __init__(self, backend_factory: Callable[[], Backend], generation: GenerationParams, model: ModelParams) -> None:
        if importlib.util.find_spec("ray") is None:
            raise InputError("generation.engine=ray: Ray is not installed; run make setup-ray or set generation.engine=local")
        self._factory = backend_factory
        self._address = generation.ray_address
        self._max_retries = generation.max_retries
        self._model = model
        self.workers = generation.workers
        self.pool: RayPool | None = None
        self._replaced_before = 0  # by pools already closed
        self._started_ray = False  # shut Ray down on close only if this engine started it

    @property
    def replaced(self) -> int:
        return self._replaced_before + (self.pool.replaced if self.pool is not None else 0)

    def start(self) -> None:
        """Connect to Ray, create the actors and wait until each has loaded the model."""
        if self.pool is not None:
            return
        import ray

        try:
            self._started_ray = connect(self._address, self.workers * self._model.n_threads)
        except ConnectionError as exc:
            raise StageFailure(
                f"generation.ray_address={self._address}: cannot reach a Ray cluster ({exc}); start one (ray start --head) or set ray_address: local"
            ) from None
        cluster = ray.cluster_resources()
        options = actor_options(self._model, cluster.get("GPU", 0))
        log.info("ray: starting %d workers with %s on a cluster with %s", self.workers, options, cluster)
        for resource, key in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            if self.workers * options[resource] > cluster.get(key, 0):
                log.warning(
                    "ray: %d workers need %g %s, the cluster has %g: some wait until it grows",
                    self.workers,
                    self.workers * options[resource],
                    key,
                    cluster.get(key, 0),
                )
        self.pool = RayPool(self._factory, options, self.workers)
        for slot, where in enumerate(self.pool.ready(self._max_retries)):
            log.info("ray: worker-%d ready on %s", slot, where)

    def run(self, units: Sequence[Sequence[Request]]) -> Iterator[tuple[str, Completion]]:
        self.start()
        yield from schedule(self.pool, units, self._max_retries)

    def report(self) -> dict:
        return {}  # per worker completions and replacements are in the generator's stats

    def close(self) -> None:
        if self.pool is not None:
            self._replaced_before += self.pool.replaced
            self.pool.close()
            self.pool = None
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


def actor_options(model: ModelParams, cluster_gpus: float) -> dict:
    """One GPU per worker when the model offloads layers and the cluster has GPUs (llama.cpp then
    needs about one CPU); otherwise ``model.n_threads`` CPUs, the threads llama.cpp will run."""
    gpu = model.n_gpu_layers != 0 and cluster_gpus > 0
    return {
        "num_cpus": 1 if gpu else model.n_threads,
        "num_gpus": 1 if gpu else 0,
        "max_restarts": 0,  # the engine replaces dead workers itself and resends their unit
        "max_task_retries": 0,
        "scheduling_strategy": "SPREAD",  # across nodes, for their memory bandwidth
    }


def connect(address: str, cpus_wanted: int) -> bool:
    """Join or start Ray; True when this call started it (and closing should stop it).

    ``local`` starts a private Ray on this machine with at least ``cpus_wanted`` logical CPUs
    (so that every worker can be placed even when the threads oversubscribe the cores); any other
    address joins a running cluster and ships this package to its nodes."""
    import ray

    if ray.is_initialized():  # e.g. a test or notebook that set Ray up itself
        return False
    if address == "local":
        where = dict(num_cpus=max(os.cpu_count() or 1, cpus_wanted), object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False)
    else:
        where = dict(runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})  # this package
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True, **where)
    return True
