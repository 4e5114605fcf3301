"""Story deduplication as the paper does it: exact duplicates, then ExactSubstr."""

from __future__ import annotations

from collections.abc import Sequence

from synthempathy.dedup.exact_hash import find_exact_duplicates
from synthempathy.dedup.exact_substr import ExactSubstrConfig, find_substr_duplicates
from synthempathy.results import StageResult

REASONS = ("exact_duplicate", "exact_substring")


def dedup_stories(stories: Sequence[dict], config: ExactSubstrConfig, field: str = "story") -> StageResult:
    """Keep the first of every duplicate group (stories come sorted by id); reject the rest with
    the id of the earlier story they repeat."""
    texts = [s[field] for s in stories]
    exact = find_exact_duplicates(texts)
    substr = find_substr_duplicates(texts, config)
    result = StageResult("dedup", REASONS, records_in=len(stories))
    for story, same_as, shares_with in zip(stories, exact, substr, strict=True):
        if same_as is not None:
            result.reject(story["id"], "exact_duplicate", f"same text as {stories[same_as]['id']}")
        elif shares_with is not None:
            result.reject(story["id"], "exact_substring", f">= {config.dup_length_threshold} bytes shared with {stories[shares_with]['id']}")
        else:
            result.keep(story)
    return result
