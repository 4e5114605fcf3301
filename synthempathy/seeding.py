"""Per-item seeds: a pure function of (global seed, stage, record id).

Adding scenarios or stories therefore never changes the seed, and so the text, of an existing one.
"""

from __future__ import annotations

import hashlib


def derive_seed(global_seed: int, stage: str, record_id: str, attempt: int = 0) -> int:
    """``attempt`` > 0: a resample of the same record (generation.resample_attempts) gets its own
    seed; attempt 0 is the record's first draw, with the seed it always had."""
    key = f"{global_seed}\x1f{stage}\x1f{record_id}" + (f"\x1fattempt{attempt}" if attempt else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF  # llama.cpp takes a 32-bit seed
