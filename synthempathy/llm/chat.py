"""What each model is sent, settled in the stage's own process before anything is decoded.

* **System messages.** Every prompt in prompts/ sends a system message, and not every chat template
  takes one: Mistral-7B-Instruct v0.1/v0.2's raise "Conversation roles must alternate", Gemma-2's
  "System role not supported", and Phi-3-mini's first template (like llama-cpp-python's built-in
  ``mistral-instruct`` format) drops it without a word. Once per model, a probe conversation is
  rendered exactly as the backends render (same chat handler, same tokens): if the system text does
  not come out exactly once, every request's system message is folded into its first user turn
  (:func:`fold_system`). The folded messages are the requests' messages, so the cache keys hold
  what was really rendered; a template that takes system messages (SmolLM2's, Llama-2/3's, Qwen's,
  Gemma-3's) changes nothing, not one cache key.
* **Prompt budget.** Every request about to be decoded is rendered and counted: prompt tokens +
  ``max_tokens`` must fit ``model.n_ctx``, which must not exceed the context the GGUF was trained
  on. Otherwise the stage stops with one line naming the record and the param to change, instead of
  llama.cpp aborting or a completion being cut short in silence.
* **Model facts.** Architecture, parameters, quantisation, trained context, where the chat template
  comes from, layers offloaded: logged once per stage and kept for logs/<stage>.json.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import gguf
import jinja2
import llama_cpp
from tqdm import tqdm

from synthempathy.errors import InputError
from synthempathy.llm import llama_cpp_internals as internals
from synthempathy.llm.llama import chat_arguments, unreadable
from synthempathy.llm.types import Request
from synthempathy.params import ModelParams

log = logging.getLogger(__name__)

FOLD_SEPARATOR = "\n\n"  # between the system text and the user text, as Mistral v0.3 and Gemma-3 fold them
_PROBE = (("system", "Sysprobe7421"), ("user", "Userprobe3916"))
# What a chat template raises on a conversation it refuses: raise_exception() is a ValueError.
_RENDER_ERRORS = (ValueError, TypeError, KeyError, jinja2.TemplateError)


def fold_system(messages: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """A leading system message joined to the first user message: its text, a blank line, then the
    user's text, as that user message. Messages without a leading system message are unchanged."""
    if not messages or messages[0][0] != "system":
        return messages
    system, rest = messages[0][1], list(messages[1:])
    for i, (role, content) in enumerate(rest):
        if role == "user":
            rest[i] = ("user", system + FOLD_SEPARATOR + content)
            return tuple(rest)
    return (("user", system), *rest)


def offloaded_layers(n_gpu_layers: int, n_layer: int, gpu_build: bool) -> tuple[int, int, str | None]:
    """Layers llama.cpp will put on the GPU, of how many (the blocks plus the output layer, as
    llama.cpp counts them), and a warning when the request and the outcome differ."""
    total = n_layer + 1
    if n_gpu_layers == 0:
        return 0, total, None
    if not gpu_build:
        return (
            0,
            total,
            f"model.n_gpu_layers={n_gpu_layers}, but this llama-cpp-python build has no GPU support: every layer runs on the CPU (run make setup on a CUDA machine)",
        )
    if n_gpu_layers == -1:
        return total, total, None
    if n_gpu_layers > total:
        return (
            total,
            total,
            f"model.n_gpu_layers={n_gpu_layers} is above the model's {total} layers ({n_layer} blocks + output): all {total} are offloaded (-1 says the same)",
        )
    return n_gpu_layers, total, None


def quantization(file_type: str | None) -> str:
    """general.file_type as llama.cpp names it (e.g. Q4_K_M)."""
    if file_type is None:
        return "unknown"
    try:
        return gguf.LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"file type {file_type}"


class ChatPrompter:
    """Loads the GGUF's vocabulary and chat template only (no weights), decides whether system
    messages must be folded, and checks prompt budgets; raises InputError for a model or param
    that cannot work."""

    def __init__(self, path: Path, model: ModelParams) -> None:
        self.path, self.n_ctx = path, model.n_ctx
        try:
            self._llm = internals.load_vocab(path, model.chat_format)
        except ValueError as exc:
            raise unreadable(path, exc) from None
        known = internals.known_chat_formats(self._llm)
        if model.chat_format is not None and model.chat_format not in known:
            raise InputError(
                f"model.chat_format={model.chat_format}: llama-cpp-python {internals.LLAMA_CPP_VERSION} has no such format "
                f"(model {path.name}); set model.chat_format to one of {', '.join(known)}, or null to use the GGUF's own template"
            )
        source = internals.template_source(self._llm, model.chat_format)
        if source is None:
            raise InputError(
                f"model.path={path}: the GGUF carries no chat template (tokenizer.chat_template) and model.chat_format is null; "
                "set model.chat_format (e.g. chatml, llama-2, mistral-instruct, gemma) or write the model's template into it "
                "with gguf-new-metadata --chat-template-file"
            )
        meta = self._llm.metadata
        arch = meta.get("general.architecture", "unknown")
        self.trained_context = int(meta.get(f"{arch}.context_length", 0))
        if self.trained_context and model.n_ctx > self.trained_context:
            raise InputError(
                f"model.n_ctx={model.n_ctx} exceeds the {self.trained_context} tokens {path.name} was trained on; set model.n_ctx <= {self.trained_context}"
            )
        self.folds_system = self._must_fold()
        n_layer = int(meta.get(f"{arch}.block_count", 0))
        offloaded, total, warning = offloaded_layers(model.n_gpu_layers, n_layer, bool(llama_cpp.llama_supports_gpu_offload()))
        if warning:
            log.warning("%s", warning)
        self.facts = {
            "file": path.name,
            "architecture": arch,
            "parameters": int(llama_cpp.llama_model_n_params(self._llm.model)),
            "quantization": quantization(meta.get("general.file_type")),
            "trained_context": self.trained_context,
            "n_ctx": model.n_ctx,
            "chat_template": source,
            "system_message": "folded into the first user turn" if self.folds_system else "sent as a system turn",
            "layers_offloaded": f"{offloaded}/{total}",
        }
        log.info("model: %s", ", ".join(f"{key} {value}" for key, value in self.facts.items()))

    def _render(self, request: Request) -> list[int]:
        return internals.completion_arguments(self._llm, chat_arguments(request))["prompt"]

    def prompt_tokens(self, request: Request) -> int:
        """The length of the prompt the backends decode for ``request`` (as prepared)."""
        try:
            return len(self._render(request))
        except _RENDER_ERRORS as exc:
            raise InputError(f"{self._cannot_render()} (record {request.id}: {exc})") from None

    def _must_fold(self) -> bool:
        """Render a system + user probe: fold unless the system text comes out exactly once.
        Raise InputError when the folded probe fails as well."""
        probe = Request(id="probe", messages=_PROBE, temperature=1.0, top_p=1.0, max_tokens=1, repeat_penalty=1.0, seed=0)
        system_text = _PROBE[0][1].encode()
        try:
            count = self._llm.detokenize(self._render(probe), special=True).count(system_text)
            if count == 1:
                return False
            log.info("the chat template renders a system message %d times: its text goes into the first user turn", count)
        except _RENDER_ERRORS as exc:
            log.info("the chat template refuses a system message (%s): its text goes into the first user turn", exc)
        folded = dataclasses.replace(probe, messages=fold_system(_PROBE))
        try:
            text = self._llm.detokenize(self._render(folded), special=True)
        except _RENDER_ERRORS as exc:
            raise InputError(f"{self._cannot_render()} ({exc})") from None
        if text.count(system_text) != 1:
            raise InputError(f"{self._cannot_render()} (the user text does not come out once)")
        return True

    def _cannot_render(self) -> str:
        return (
            f"model.path={self.path}: its chat template cannot render a user message, even with the system text folded into it; "
            "set model.chat_format to a llama-cpp-python format that fits the model, or fix the template with gguf-new-metadata --chat-template-file"
        )

    def prepare(self, requests: Sequence[Request]) -> list[Request]:
        """The requests as this model is sent them (system messages folded where it needs that)."""
        if not self.folds_system:
            return list(requests)
        return [dataclasses.replace(r, messages=fold_system(r.messages)) for r in requests]

    def check_budget(self, requests: Sequence[Request], stage: str) -> None:
        """Every request's prompt tokens + max_tokens fit model.n_ctx, or InputError naming the first that does not."""
        for request in tqdm(requests, desc=f"{stage}: prompt budget", unit="prompt", dynamic_ncols=True, leave=False):
            n_prompt = self.prompt_tokens(request)
            if n_prompt + request.max_tokens > self.n_ctx:
                raise InputError(
                    f"record {request.id}: prompt {n_prompt} tokens + {stage}.max_tokens {request.max_tokens} = "
                    f"{n_prompt + request.max_tokens} > model.n_ctx {self.n_ctx}; raise model.n_ctx{self._ceiling()} or lower {stage}.max_tokens"
                )

    def _ceiling(self) -> str:
        return f" (at most {self.trained_context}, the context {self.path.name} was trained on)" if self.trained_context else ""
