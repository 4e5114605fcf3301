"""Continuous batching on llama.cpp's low-level API: up to ``batch_size`` requests share every
``llama_decode`` call, one KV sequence (slot) each, and a finished sequence frees its slot for
the next request at the following step.

What a completion means is borrowed from the single-stream path, so only the arithmetic
differs: create_chat_completion's own chat handler formats and tokenizes the prompt, llama-cpp-
python's sampler chain is built from those arguments, and ``_Sequence.add`` applies
``Llama._create_completion``'s per-token stop rules. Each of these reaches into llama-cpp-python
internals, all of them through llama_cpp_internals.py.

One ``generate`` call is an isolated, deterministic unit: memory is cleared first and the slot
schedule depends only on the request list and the (deterministic) tokens sampled, so the same
list gives byte-identical completions. The cached generator sends whole shards (shards.py).
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
from llama_cpp import Llama

from synthempathy.llm import llama_cpp_internals as internals
from synthempathy.llm.llama import chat_arguments, load_llama
from synthempathy.llm.types import Completion, Request
from synthempathy.params import ModelParams

# Options a chat handler could pass that this backend does not implement (none of them is set
# by chat_arguments); refusing them beats silently sampling something else.
_UNSUPPORTED = ("grammar", "logits_processor", "logit_bias", "logprobs", "suffix")


def completion_arguments(llm: Llama, request: Request) -> dict:
    """The arguments create_chat_completion would pass to create_completion: prompt tokens, stop
    strings and sampling params, exactly as the single-stream backend gets them."""
    arguments = internals.completion_arguments(llm, chat_arguments(request))
    unsupported = [name for name in _UNSUPPORTED if arguments.get(name) is not None]
    if unsupported or arguments.get("stream"):
        raise NotImplementedError(f"batched generation does not support {unsupported or 'stream'}")
    return arguments


@dataclass
class _Sequence:
    """One request in a slot: its sampler and the text so far, with _create_completion's stops."""

    request: Request
    prompt: list[int]
    max_tokens: int
    stop: list[bytes]
    sampler: object  # llama_cpp._internals.LlamaSampler: the chain, freed with this object
    drop_space: bool = False  # detokenize() drops a leading space after a leading BOS
    tokens: list[int] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    multibyte_fix: int = 0
    end: int | None = None  # text length kept when a stop string ends it
    finish_reason: str = ""
    index: int = 0  # position in the current llama_batch of the token whose logits it samples

    def text(self) -> bytearray:
        return self.raw[1:] if self.drop_space and self.raw[:1] == b" " else self.raw

    def add(self, token: int, piece: bytes, is_eog: bool, bos: int) -> bool:
        """Take a sampled token; True when the completion is finished (same order of checks as
        Llama._create_completion, including its wait for incomplete UTF-8 before any stop)."""
        if is_eog:
            self.finish_reason = "stop"
            return True
        if not self.tokens:
            self.drop_space = internals.drops_leading_space(token, bos)
        self.tokens.append(token)
        self.raw += piece
        text = self.text()
        pending = internals.pending_utf8_bytes(text)
        if pending is not None:
            self.multibyte_fix = pending
        if self.multibyte_fix > 0:
            self.multibyte_fix -= 1
            return False
        found = [s for s in self.stop if s in text]
        if found:
            self.end, self.finish_reason = text.index(found[0]), "stop"
            return True
        if len(self.tokens) >= self.max_tokens:
            self.finish_reason = "length"
            return True
        return False

    def completion(self) -> Completion:
        return Completion(
            id=self.request.id,
            text=bytes(self.text()[: self.end]).decode("utf-8", errors="ignore"),
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.tokens),
            finish_reason=self.finish_reason,
        )


class BatchedLlamaBackend:
    """Decodes up to ``batch_size`` requests at a time on one llama.cpp context."""

    def __init__(self, path: Path, model: ModelParams, batch_size: int) -> None:
        self.batch_size = batch_size
        self.n_ctx_seq = model.n_ctx  # per sequence, as the single stream's whole context
        self.llm = load_llama(path, model)  # tokenizer, chat handler, samplers, context settings
        self._ctx = internals.open_batch_context(self.llm, model.n_ctx, batch_size)
        self._batch = llama_cpp.llama_batch_init(model.n_ctx * batch_size, 0, 1)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._bos = self.llm.token_bos()
        self._pieces: dict[int, tuple[bytes, bool]] = {}
        # Sampling runs between decodes, when llama.cpp's threads idle; the C samplers release
        # the GIL, so a pool spreads one step's samples over the same number of cores.
        self._pool = ThreadPoolExecutor(model.n_threads) if model.n_threads > 1 and batch_size > 1 else None
        weakref.finalize(self, _free, self.llm, self._ctx, self._batch)  # llm outlives the context

    def generate(self, requests: Sequence[Request]) -> Iterator[Completion]:
        queue = deque(requests)
        slots: list[_Sequence | None] = [None] * self.batch_size
        llama_cpp.llama_memory_clear(self._memory, True)  # every call starts from the same state
        while queue or any(seq is not None for seq in slots):
            n = 0
            for slot, seq in enumerate(slots):
                if seq is None and queue:
                    seq = slots[slot] = self._start(queue.popleft())
                    n = self._put(n, seq.prompt, 0, slot)
                elif seq is not None:
                    n = self._put(n, seq.tokens[-1:], len(seq.prompt) + len(seq.tokens) - 1, slot)
                if seq is not None:
                    seq.index = n - 1
            self._batch.n_tokens = n
            status = llama_cpp.llama_decode(self._ctx, self._batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed ({status}) on {n} tokens")
            active = [(slot, seq) for slot, seq in enumerate(slots) if seq is not None]
            for (slot, seq), token in zip(active, self._sample([seq for _, seq in active]), strict=True):
                if seq.add(token, *self._piece(token), self._bos):
                    slots[slot] = None
                    llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
                    yield seq.completion()

    def _sample(self, sequences: list[_Sequence]) -> list[int]:
        """One token per sequence from its own sampler chain (so thread timing cannot matter)."""
        if self._pool is None or len(sequences) == 1:
            return [self._sample_one(seq) for seq in sequences]
        llama_cpp.llama_get_logits(self._ctx)  # settle llama.cpp's lazy output bookkeeping: threads only read
        return list(self._pool.map(self._sample_one, sequences))

    def _sample_one(self, seq: _Sequence) -> int:
        return llama_cpp.llama_sampler_sample(seq.sampler.sampler, self._ctx, seq.index)

    def _start(self, request: Request) -> _Sequence:
        args = completion_arguments(self.llm, request)
        prompt = args["prompt"]
        if len(prompt) >= self.n_ctx_seq:
            raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {self.n_ctx_seq}")
        sampler = internals.new_sampler(self.llm, args)
        stop = args["stop"] or []
        return _Sequence(
            request=request,
            prompt=prompt,
            max_tokens=min(args["max_tokens"], self.n_ctx_seq - len(prompt)),  # as _create_completion
            stop=[s.encode("utf-8") for s in ([stop] if isinstance(stop, str) else stop)],
            sampler=sampler,
        )

    def _put(self, n: int, tokens: Sequence[int], pos: int, seq_id: int) -> int:
        """Append tokens of one sequence at batch index n; only the last one gets logits."""
        batch = self._batch
        for i, token in enumerate(tokens, start=n):
            batch.token[i] = token
            batch.pos[i] = pos + i - n
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq_id
            batch.logits[i] = 0
        end = n + len(tokens)
        batch.logits[end - 1] = 1
        return end

    def _piece(self, token: int) -> tuple[bytes, bool]:
        """Token text as detokenize() renders it (special tokens empty), and whether it ends a turn."""
        if token not in self._pieces:
            self._pieces[token] = (internals.token_piece(self._vocab, token), bool(llama_cpp.llama_vocab_is_eog(self._vocab, token)))
        return self._pieces[token]


def _free(llm: Llama, ctx, batch) -> None:
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
