"""ExactSubstr against a brute-force reference, and the story-level dedup step."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from synthempathy.dedup.exact_hash import find_exact_duplicates, normalise
from synthempathy.dedup.exact_substr import ExactSubstrConfig, find_substr_duplicates
from synthempathy.dedup.stories import dedup_stories


def brute_force(texts, threshold):
    """Text j is a duplicate of the earliest i < j sharing any substring of >= threshold bytes."""
    normed = [normalise(t).encode("utf-8") for t in texts]
    out = []
    for j, b in enumerate(normed):
        grams = {b[k : k + threshold] for k in range(len(b) - threshold + 1)}
        out.append(next((i for i in range(j) if any(g in normed[i] for g in grams)), None))
    return out


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="abc d", max_size=40), min_size=0, max_size=12),
    threshold=st.integers(min_value=1, max_value=12),
)
def test_matches_brute_force_on_small_alphabets(texts, threshold):
    assert find_substr_duplicates(texts, ExactSubstrConfig(threshold)) == brute_force(texts, threshold)


def test_planted_repeats_in_random_texts():
    rng = random.Random(7)
    words = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words) for _ in range(60)) for _ in range(80)]
    for target in (10, 33, 70):  # plant a 40-byte chunk of an earlier text into later ones
        source = texts[target - rng.randint(1, 9)]
        start = rng.randint(0, len(source) - 41)
        texts[target] = texts[target][:50] + " " + source[start : start + 40] + " " + texts[target][50:]
    assert find_substr_duplicates(texts, ExactSubstrConfig(30)) == brute_force(texts, 30)
    found = find_substr_duplicates(texts, ExactSubstrConfig(30))
    assert {10, 33, 70} <= {j for j, i in enumerate(found) if i is not None}


def test_matches_never_span_two_texts():
    # "abc" ends text 0 and "def" starts text 1: "abcdef" in text 2 must not match across them.
    assert find_substr_duplicates(["xx abc", "def yy", "abcdef"], ExactSubstrConfig(5)) == [None, None, None]


def test_unicode_and_case_normalisation():
    texts = ["Él está MUY cansado hoy", "él  está muy\ncansado hoy también"]
    assert find_substr_duplicates(texts, ExactSubstrConfig(20)) == [None, 0]
    assert find_exact_duplicates(["A  b", "a b", "c"]) == [None, 0, None]


def test_dedup_stories_keeps_first_and_names_the_original():
    stories = [
        {"id": "sad-1-s0", "story": "Maria lost her job at the bakery and cannot pay rent this month."},
        {"id": "sad-1-s1", "story": "MARIA lost her job at the bakery and cannot pay rent   this month."},
        {"id": "sad-2-s0", "story": "Tom failed his exam. Maria lost her job at the bakery and cannot pay rent."},
        {"id": "sad-3-s0", "story": "A completely different story about a broken car."},
    ]
    result = dedup_stories(stories, ExactSubstrConfig(40))
    kept, rejected, metrics = result.kept, result.rejected, result.metrics()
    assert [s["id"] for s in kept] == ["sad-1-s0", "sad-3-s0"]
    assert rejected[0] == {"id": "sad-1-s1", "stage": "dedup", "reason": "exact_duplicate", "detail": "same text as sad-1-s0"}
    assert rejected[1]["reason"] == "exact_substring" and "sad-1-s0" in rejected[1]["detail"]
    assert metrics == {"records_in": 4, "records_out": 2, "rejected": {"exact_duplicate": 1, "exact_substring": 1}}
