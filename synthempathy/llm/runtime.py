"""Wire params to a cached generator: the one place that picks and fingerprints the backend."""

from __future__ import annotations

import functools
from pathlib import Path

from synthempathy.llm.cache import LLMCache
from synthempathy.llm.chat import ChatPrompter
from synthempathy.llm.generator import CachedGenerator, LocalEngine
from synthempathy.llm.llama import LlamaBackend
from synthempathy.llm.models import file_sha256, resolve_model_path
from synthempathy.llm.shards import ShardPlan
from synthempathy.llm.types import Backend
from synthempathy.params import Params


def model_fingerprint(params: Params, model_sha256: str) -> dict:
    """What decides a completion besides the request: the weights, the chat template, and the
    runtime choices that change numerics (GPU kernels, batch composition). Not the engine: the
    local and the Ray engine decode the same units the same way, and share one cache."""
    return {
        "sha256": model_sha256,
        "chat_format": params.model.chat_format,
        "gpu": params.model.n_gpu_layers != 0,
        "batch_size": params.generation.batch_size,
    }


def cache_fingerprint(params: Params) -> dict:
    """The model part of every LLM cache key for ``params``: the served model and its revision
    (engine openai), else the GGUF's sha256 and the runtime choices of :func:`model_fingerprint`."""
    if params.generation.engine == "openai":
        from synthempathy.llm.openai_engine import served_fingerprint

        return served_fingerprint(params.generation)
    return model_fingerprint(params, file_sha256(resolve_model_path(params.model.path).resolve()))


def open_backend(params: Params, path: Path) -> Backend:
    """generation.batch_size 1: the single stream; above: continuous batching."""
    batch_size = params.generation.batch_size
    if batch_size == 1:
        return LlamaBackend(path, params.model)
    from synthempathy.llm.batched import BatchedLlamaBackend  # imports llama_cpp

    return BatchedLlamaBackend(path, params.model, batch_size)


def open_generator(params: Params, cache: LLMCache | None = None) -> CachedGenerator:
    """The cached generator for ``params``: local backend, Ray workers or inference servers
    (``generation.engine``)."""
    if params.generation.engine == "openai":  # no local GGUF: the servers hold the model
        from synthempathy.llm.openai_engine import OpenAIEngine

        # Lone requests: the servers batch them as they like, so no shard can fix a batch's company.
        return CachedGenerator(OpenAIEngine(params.generation), cache or LLMCache(), cache_fingerprint(params))
    path = resolve_model_path(params.model.path).resolve()  # absolute: Ray workers may run elsewhere
    fingerprint = cache_fingerprint(params)
    batch_size = params.generation.batch_size
    plan = ShardPlan.for_batch(batch_size, params.generation.shard_batches) if batch_size > 1 else None
    factory = functools.partial(open_backend, params, path)  # picklable, for Ray workers
    if params.generation.engine == "ray":
        from synthempathy.llm.ray_engine import RayEngine  # which imports ray only when it starts

        engine = RayEngine(factory, params.generation, params.model)
    else:
        engine = LocalEngine(factory)
    prompter = ChatPrompter(path, params.model)  # bad model params stop here, before any worker starts
    return CachedGenerator(engine, cache or LLMCache(), fingerprint, plan, prompter)


def model_weights(params: Params) -> str:
    """The generation model's weights as the dataset card and release tags name them."""
    if params.generation.engine == "openai":
        return params.generation.model_revision
    return "sha256:" + file_sha256(resolve_model_path(params.model.path).resolve())


def generation_model_name(params: Params) -> str:
    """The model that generates the corpus: the served model id, or the GGUF's file name."""
    if params.generation.engine == "openai":
        return params.generation.served_model
    return resolve_model_path(params.model.path).name
