"""Prompt templates: one YAML file per generation stage under ``prompts/``.

Each file is a DVC dependency of the stage that uses it, so editing a prompt reruns only
what it affects. Fields in ``{braces}`` are filled from the record being processed.

An optional ``examples`` list makes the prompt few-shot: each example gives the template's fields
and an ``answer``; it is sent as a user turn (the same template, filled from the example) followed
by an assistant turn (the answer), before the record's own user turn. Small models copy the shape
of a shown answer (length, person, staying on the situation) far better than they follow a rule.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from synthempathy.errors import InputError

PROMPTS_DIR = Path("prompts")


@dataclass(frozen=True)
class Prompt:
    source: str
    system: str
    user: str
    examples: tuple[tuple[str, str], ...] = ()  # (user turn, assistant answer), rendered at load time

    def fields(self) -> set[str]:
        return {f for text in (self.system, self.user) for _, f, _, _ in string.Formatter().parse(text) if f}

    def messages(self, record: dict) -> tuple[tuple[str, str], ...]:
        missing = self.fields() - record.keys()
        if missing:
            raise InputError(f"{self.source}: record {record.get('id')} lacks field(s) {', '.join(sorted(missing))} used by the prompt; fix the prompt")
        user = self.user.format(**record).strip()
        system = self.system.format(**record).strip()
        shots = tuple(turn for question, answer in self.examples for turn in (("user", question), ("assistant", answer)))
        return ((("system", system),) if system else ()) + shots + (("user", user),)


def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> Prompt:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"{path}: prompt file not found; restore it from git")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())}); fix the file or restore it from git") from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        raise InputError(f"{path}: needs a 'user' template string (and optionally 'system')")
    unknown = set(data) - {"system", "user", "examples"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; only 'system', 'user' and 'examples' are read")
    prompt = Prompt(str(path), data.get("system") or "", data["user"])
    return dataclasses.replace(prompt, examples=tuple(_example(prompt, i, e) for i, e in enumerate(data.get("examples") or [], start=1)))


def _example(prompt: Prompt, number: int, example: object) -> tuple[str, str]:
    """One few-shot example as (user turn, answer): the user template filled from its fields."""
    where = f"{prompt.source}: example {number}"
    if not isinstance(example, dict) or not isinstance(example.get("answer"), str) or not example["answer"].strip():
        raise InputError(f"{where} needs an 'answer' text and the template's fields ({', '.join(sorted(prompt.fields()))})")
    missing = prompt.fields() - example.keys()
    if missing:
        raise InputError(f"{where} lacks field(s) {', '.join(sorted(missing))} used by the prompt; add them to the example")
    return prompt.user.format(**example).strip(), example["answer"].strip()
