"""llama.cpp backend (llama-cpp-python), in-process, CPU or GPU (``model.n_gpu_layers``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from synthempathy.errors import InputError
from synthempathy.llm.types import Completion, Request
from synthempathy.params import ModelParams

log = logging.getLogger(__name__)


def load_llama(path: Path, model: ModelParams):
    """Load a GGUF; a corrupt or unsupported file is a one-line error, not a traceback."""
    from llama_cpp import Llama

    try:
        return Llama(
            model_path=str(path),
            n_ctx=model.n_ctx,
            n_threads=model.n_threads,
            n_threads_batch=model.n_threads,
            n_gpu_layers=model.n_gpu_layers,
            chat_format=model.chat_format,
            verbose=False,
        )
    except ValueError as exc:
        raise unreadable(path, exc) from None


def unreadable(path: Path, exc: Exception) -> InputError:
    return InputError(f"model.path={path}: llama.cpp cannot load it ({exc}); download the GGUF again or fix model.path")


def chat_arguments(request: Request) -> dict:
    """``Llama.create_chat_completion`` arguments for a request: the one place that says what
    the sampling params mean, for the single-stream and the batched backend alike."""
    return dict(
        messages=[{"role": role, "content": content} for role, content in request.messages],
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=0,  # only temperature and top_p shape sampling, as in the paper
        min_p=0.0,
        repeat_penalty=request.repeat_penalty,
        max_tokens=request.max_tokens,
        seed=request.seed,
    )


class LlamaBackend:
    """One stream: each request is decoded alone from an empty KV cache.

    Starting every request from an empty cache (no prompt-prefix reuse) makes a completion
    depend only on its own request, so a resumed run reproduces an uninterrupted one.
    """

    def __init__(self, path: Path, model: ModelParams) -> None:
        self.llm = load_llama(path, model)

    def generate(self, requests: Sequence[Request]) -> Iterator[Completion]:
        for request in requests:
            self.llm.reset()
            out = self.llm.create_chat_completion(**chat_arguments(request))
            choice = out["choices"][0]
            yield Completion(
                id=request.id,
                text=choice["message"]["content"] or "",
                prompt_tokens=out["usage"]["prompt_tokens"],
                completion_tokens=out["usage"]["completion_tokens"],
                finish_reason=choice["finish_reason"] or "stop",
            )
