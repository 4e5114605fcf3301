"""LLM generation behind one interface: ``generate(requests) -> completions``.

Stages build :class:`Request` objects and never talk to llama.cpp directly; the cache and
the progress bar wrap any backend, so batching and remote engines slot in without touching
the stages.
"""

from synthempathy.llm.types import Completion, Request

__all__ = ["Completion", "Request"]
