"""Per-item seeds: a pure function of (global seed, stage, record id).

Adding scenarios or stories therefore never changes the seed, and so the text, of an existing one.
"""

from __future__ import annotations

import hashlib


def derive_seed(global_seed: int, stage: str, record_id: str) -> int:
    digest = hashlib.sha256(f"{global_seed}\x1f{stage}\x1f{record_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF  # llama.cpp takes a 32-bit seed
