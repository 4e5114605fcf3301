"""Requests and completions: plain, hashable values that travel to any backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True)
class Request:
    id: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float
    top_p: float
    max_tokens: int
    repeat_penalty: float
    seed: int
    attempt: int = 0  # resample round (generation.resample_attempts); its seed is derived from it too

    def sampling(self) -> dict:
        """Everything but the id: what decides the completion, and so the cache key. The attempt
        is in the key from the first resample on; a first draw keeps the key it always had."""
        data = asdict(self)
        del data["id"]
        if not self.attempt:
            del data["attempt"]
        return data


@dataclass(frozen=True)
class Completion:
    id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length" (truncated at max_tokens)


class Backend(Protocol):
    """Turns requests into completions, yielded as they finish (in any order).

    One call is the unit of batch composition: a completion may depend on the other requests
    of its call (batched backends), never on earlier calls.
    """

    def generate(self, requests: Sequence[Request]) -> Iterator[Completion]: ...


class Engine(Protocol):
    """Runs units (each one backend ``generate`` call: a shard, or a lone request) somewhere
    and yields ``(worker, completion)`` as completions finish, in any order. The cached
    generator around it computes the units, keeps the cache and the stats."""

    name: str  # "local", "ray" or "openai"
    workers: int  # workers, or endpoints
    replaced: int  # workers lost and replaced so far

    def start(self) -> None:
        """Load the model (start the workers); called before the first unit, may be called again."""

    def run(self, units: Sequence[Sequence[Request]]) -> Iterator[tuple[str, Completion]]: ...

    def report(self) -> dict:
        """What this engine observed, for logs/<stage>.json (e.g. latency per endpoint)."""

    def close(self) -> None: ...
