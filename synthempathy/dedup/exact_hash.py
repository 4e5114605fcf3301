"""Exact duplicates after whitespace and case normalisation."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace: formatting differences must not hide a duplicate."""
    return " ".join(text.lower().split())


def find_exact_duplicates(texts: Sequence[str]) -> list[int | None]:
    """For each text, the index of the first earlier text equal after normalisation, else None."""
    first: dict[bytes, int] = {}
    out: list[int | None] = []
    for i, text in enumerate(texts):
        digest = hashlib.sha256(normalise(text).encode("utf-8")).digest()
        out.append(first.get(digest))
        first.setdefault(digest, i)
    return out
