"""Prompt templates: one YAML file per generation stage under ``prompts/``.

Each file is a DVC dependency of the stage that uses it, so editing a prompt reruns only
what it affects. Fields in ``{braces}`` are filled from the record being processed.
"""

from __future__ import annotations

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

    def fields(self) -> set[str]:
        return {f for text in (self.system, self.user) for _, f, _, _ in string.Formatter().parse(text) if f}

    def messages(self, record: dict) -> tuple[tuple[str, str], ...]:
        missing = self.fields() - record.keys()
        if missing:
            raise InputError(f"{self.source}: record {record.get('id')} lacks field(s) {', '.join(sorted(missing))} used by the prompt; fix the prompt")
        user = self.user.format(**record).strip()
        system = self.system.format(**record).strip()
        return (("system", system), ("user", user)) if system else (("user", user),)


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
    unknown = set(data) - {"system", "user"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; only 'system' and 'user' are read")
    return Prompt(str(path), data.get("system") or "", data["user"])
