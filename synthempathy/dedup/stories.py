"""Story deduplication as the paper does it: exact duplicates, then ExactSubstr."""

from __future__ import annotations

from typing import Sequence

from synthempathy.dedup.exact_hash import find_exact_duplicates
from synthempathy.dedup.exact_substr import ExactSubstrConfig, find_substr_duplicates
from synthempathy.records import rejection


def dedup_stories(stories: Sequence[dict], config: ExactSubstrConfig, field: str = "story") -> tuple[list[dict], list[dict], dict]:
    """Keep the first of every duplicate group (stories come sorted by id); reject the rest with
    the id of the earlier story they repeat."""
    texts = [s[field] for s in stories]
    exact = find_exact_duplicates(texts)
    substr = find_substr_duplicates(texts, config)
    kept, rejected = [], []
    for story, same_as, shares_with in zip(stories, exact, substr, strict=True):
        if same_as is not None:
            rejected.append(rejection(story["id"], "dedup", "exact_duplicate", f"same text as {stories[same_as]['id']}"))
        elif shares_with is not None:
            detail = f">= {config.dup_length_threshold} bytes shared with {stories[shares_with]['id']}"
            rejected.append(rejection(story["id"], "dedup", "exact_substring", detail))
        else:
            kept.append(story)
    reasons = {"exact_duplicate": 0, "exact_substring": 0}
    for r in rejected:
        reasons[r["reason"]] += 1
    return kept, rejected, {"records_in": len(stories), "records_out": len(kept), "rejected": reasons}
