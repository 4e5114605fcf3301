"""Every use of llama-cpp-python beyond its public API, in one module, for one pinned version.

The batched backend and the prompt checks need things ``Llama`` does not expose: the prompt tokens
and sampling arguments its chat handler produces, its sampler chain, its context settings, and the
per-token rules by which ``Llama._create_completion`` turns tokens into text. They are taken from
llama-cpp-python ``LLAMA_CPP_VERSION`` (the Makefile reads the version it installs from here) and
checked at import: another installed version stops with one line instead of decoding differently.

Upgrading llama-cpp-python: set ``LLAMA_CPP_VERSION``, then re-port each item below against the new
``llama_cpp/llama.py`` and ``llama_cpp/llama_chat_format.py``, and run tests/test_batched.py (its
``test_batch_of_one_reproduces_the_single_stream`` compares the ported rules with ``Llama`` itself
token for token) and tests/test_chat_templates.py.

1. ``completion_arguments``: ``Llama.create_chat_completion`` is run against ``_PromptRecorder``, a
   stand-in whose ``create_completion`` records its arguments instead of generating. Depends on
   create_chat_completion resolving the handler from ``chat_handler`` / ``_chat_handlers`` /
   ``get_chat_completion_handler`` and on the keys ``chat_formatter_to_chat_completion_handler``
   passes to ``create_completion`` (prompt tokens, stop, the sampling params).
2. ``template_source`` and ``known_chat_formats``: ``Llama._chat_handlers`` (the GGUF's templates),
   ``Llama.chat_format`` after ``__init__`` (``"chat_template.default"`` for the GGUF's Jinja
   template, a registered name when ``guess_chat_format_from_gguf_metadata`` recognised it, or
   ``"llama-2"`` as the silent fallback), and ``LlamaChatCompletionHandlerRegistry``.
3. ``new_sampler``: ``Llama._init_sampler`` and its keyword names; the chain's ``dist`` sampler
   seeded from ``Llama.set_seed``.
4. ``open_batch_context``: ``Llama.context_params`` (the ``llama_context_params`` the single stream
   was created with).
5. ``load_vocab``: ``Llama(vocab_only=True)`` still creates a context and llama.cpp warns through
   llama-cpp-python's log callback, which prints to ``sys.stderr`` (llama_cpp/_logger.py).
6. ``pending_utf8_bytes``, ``drops_leading_space`` and ``token_piece``: the incomplete-UTF-8 wait in
   ``Llama._create_completion`` (copied byte rule), the leading space ``LlamaTokenizer.detokenize``
   drops after a BOS, and ``llama_token_to_piece`` with special tokens rendered empty.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import io
from pathlib import Path
from typing import NoReturn

import llama_cpp
from llama_cpp import Llama, llama_chat_format

from synthempathy.errors import StageFailure

LLAMA_CPP_VERSION = "0.3.36"

_installed = importlib.metadata.version("llama_cpp_python")
if _installed != LLAMA_CPP_VERSION:
    raise StageFailure(
        f"llama-cpp-python {_installed} is installed, but synthempathy/llm/llama_cpp_internals.py is ported to "
        f"{LLAMA_CPP_VERSION}; run make setup, or re-port that module (its docstring lists what) and set LLAMA_CPP_VERSION"
    )

# The chat_format llama-cpp-python gives a GGUF whose metadata names no template and whose call names none.
FALLBACK_CHAT_FORMAT = "llama-2"
_GGUF_TEMPLATE = "chat_template.default"  # the name __init__ registers tokenizer.chat_template under


class _Recorded(Exception):
    def __init__(self, arguments: dict) -> None:
        super().__init__("create_completion arguments recorded")
        self.arguments = arguments


class _PromptRecorder:
    """Stands in for the Llama inside create_chat_completion: the chat handler formats and
    tokenizes the messages as for a real call, and its create_completion call is recorded."""

    def __init__(self, llm: Llama) -> None:
        self._llm = llm

    def __getattr__(self, name: str):
        return getattr(self._llm, name)

    def create_completion(self, **arguments) -> NoReturn:
        raise _Recorded(arguments)


def completion_arguments(llm: Llama, chat_arguments: dict) -> dict:
    """The arguments ``create_chat_completion(**chat_arguments)`` would pass to create_completion:
    prompt tokens, stop strings and sampling params. A template error propagates as raised."""
    try:
        Llama.create_chat_completion(_PromptRecorder(llm), **chat_arguments)
    except _Recorded as recorded:
        return recorded.arguments
    raise RuntimeError("the chat handler never called create_completion")


def known_chat_formats(llm: Llama) -> list[str]:
    """Every ``model.chat_format`` this llama-cpp-python accepts for ``llm``: its registered
    formats and the named templates in the GGUF."""
    registered = llama_chat_format.LlamaChatCompletionHandlerRegistry()._chat_handlers
    return sorted(set(registered) | set(llm._chat_handlers))


def template_source(llm: Llama, chat_format: str | None) -> str | None:
    """Where the chat template ``llm`` renders with comes from: ``gguf`` (its Jinja
    tokenizer.chat_template), ``gguf, recognised as <name>`` (llama-cpp-python matched the template
    to a built-in format and uses that), ``model.chat_format=<name>``; None for the silent fallback
    (no template in the GGUF and no chat_format)."""
    if chat_format is not None:
        return f"model.chat_format={chat_format}"
    if llm.chat_format == _GGUF_TEMPLATE:
        return "gguf"
    if _GGUF_TEMPLATE in llm._chat_handlers:
        return f"gguf, recognised as llama-cpp-python's built-in {llm.chat_format!r}"
    return None


def load_vocab(path: Path, chat_format: str | None) -> Llama:
    """The GGUF's tokenizer and chat templates without its weights (a fraction of a second for
    a 7B file): enough to render and count prompts. Its spurious context warning is dropped."""
    with contextlib.redirect_stderr(io.StringIO()):
        return Llama(model_path=str(path), vocab_only=True, chat_format=chat_format, verbose=False)


def new_sampler(llm: Llama, arguments: dict):
    """The sampler chain ``Llama._create_completion`` builds from ``arguments`` (a
    completion_arguments result), seeded with its seed. Freed with the returned object."""
    llm.set_seed(arguments["seed"])  # _init_sampler seeds dist() from it
    return llm._init_sampler(
        top_k=arguments["top_k"],
        top_p=arguments["top_p"],
        min_p=arguments["min_p"],
        typical_p=arguments["typical_p"],
        temp=arguments["temperature"],
        repeat_penalty=arguments["repeat_penalty"],
        frequency_penalty=arguments["frequency_penalty"],
        presence_penalty=arguments["presence_penalty"],
        mirostat_mode=arguments["mirostat_mode"],
        mirostat_tau=arguments["mirostat_tau"],
        mirostat_eta=arguments["mirostat_eta"],
    )


def open_batch_context(llm: Llama, n_ctx_seq: int, batch_size: int) -> llama_cpp.llama_context_p:
    """A context for ``batch_size`` sequences of up to ``n_ctx_seq`` tokens, otherwise set up
    like the single stream's (threads, attention, KV types come from ``llm``)."""
    params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
    params.n_ctx = n_ctx_seq * batch_size
    params.n_batch = params.n_ctx  # one step may carry a whole prompt for every slot
    params.n_seq_max = batch_size
    params.n_outputs_max = batch_size  # one row of logits per slot and step
    params.kv_unified = False  # a KV stream per slot: attention never scans other sequences
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    if ctx is None:
        raise MemoryError(f"llama.cpp could not create a context for batch_size={batch_size}, n_ctx={n_ctx_seq}")
    return ctx


def pending_utf8_bytes(text: bytes | bytearray) -> int | None:
    """Tokens to wait for a multi-byte UTF-8 character begun in the last 3 bytes of ``text``, or
    None when none begins there (then the previous count stands); _create_completion checks no stop
    string while the count is positive. Its loop, copied as is."""
    pending = None
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in ((2, 192), (3, 224), (4, 240)):
            if num > k and pattern & char == pattern:
                pending = num - k
    return pending


def drops_leading_space(first_token: int, bos: int) -> bool:
    """detokenize() drops the leading space of a text that starts after a BOS token."""
    return first_token == bos


def token_piece(vocab, token: int) -> bytes:
    """Token text as detokenize() renders it: special tokens (BOS, EOS, control) as nothing."""
    buffer = ctypes.create_string_buffer(64)
    size = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, False)
    return buffer.raw[:size]
