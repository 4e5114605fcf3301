"""Cheap checks run where a text is made (brainstorm, rewrite, respond), before it is embedded,
answered or scored downstream: a text that fails one is drawn again (generation.resample_attempts).

They are the filter stage's own rules (filters.py) and the align stage's own thresholds
(align.py, params ``align.*``), applied to the one field the stage writes, plus a person check
the filter does not make: an explanation must be told by the seeker (I/my more often than
he/she), a response must talk to the seeker (you/your more often than he/she) and not about them
as "your friend". Nothing here is looser than downstream; the filter and align stages still decide
what reaches the corpus.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np

from synthempathy.align import CHECKS as ALIGN_CHECKS
from synthempathy.align import row_cosines
from synthempathy.filters import (
    FIRST_PERSON,
    SECOND_PERSON,
    Drop,
    Rule,
    _heads,
    ai_disclaimer,
    copied_explanation,
    declared_reasons,
    english,
    first_person,
    meta_text,
    refusal,
    repetition,
    run_filters,
    second_person,
    template_tokens,
    truncated,
    word_bounds,
)
from synthempathy.params import AlignParams, FilterParams, Params

THIRD_PERSON = frozenset({"he", "she", "him", "her", "his", "hers", "himself", "herself"})
MIN_PERSON_WORDS = 2  # an explanation needs at least this many I/my words, a response you/your words
YOUR_FRIEND = re.compile(r"\byour (?:\w+ )?friend\b", re.I)  # "your friend", "your best friend"; not "your friends"
FRIEND = re.compile(r"\bfriend", re.I)

_ALIGN = {reason: (param, reason) for _, param, reason in ALIGN_CHECKS}
# Per generated field: (the text it is compared with, AlignParams threshold, rejection reason).
# The story's bar is the one `on_topic` (metrics/corpus.json: sampling) counts against.
ALIGNMENT: dict[str, tuple[tuple[str, str, str], ...]] = {
    "story": (("scenario", "min_scenario_similarity", "off_topic_story"),),
    "explanation": (
        ("scenario", *_ALIGN["off_topic_explanation"]),
        ("story", *_ALIGN["unfaithful_rewrite"]),
    ),
    "response": (("explanation", *_ALIGN["off_topic_response"]),),
}

Check = Callable[[Sequence[dict]], list[Drop | None]]  # a verdict per record (None: passes)
Embed = Callable[[Sequence[str]], np.ndarray]


def person(record: dict, field: str, own: frozenset[str], reason: str) -> Drop | None:
    """``field`` speaks in ``own`` person: at least MIN_PERSON_WORDS such words, more than he/she words."""
    heads = _heads(record[field])
    n_own = sum(h in own for h in heads)
    n_third = sum(h in THIRD_PERSON for h in heads)
    if n_own >= MIN_PERSON_WORDS and n_own > n_third:
        return None
    return Drop(reason, f"{field}: {n_own} {'/'.join(sorted(own)[:3])}... words vs {n_third} he/she words")


def writer_as_friend(record: dict) -> Drop | None:
    """A response about "your friend" to an explanation that names no friend answers someone
    reporting on the writer, not the writer (53% of a `make paper` corpus did; docs/results.md)."""
    match = YOUR_FRIEND.search(record["response"])
    if match is None or FRIEND.search(record["explanation"]):
        return None
    return Drop("writer_as_friend", f"response: {match.group(0)!r}, but the explanation names no friend")


def text_rules(field: str, params: FilterParams) -> list[Rule]:
    """The rules for one generated field, cheapest first; the first failing one names the reason."""
    only = (field,)
    rules = [
        Rule(("truncated",), functools.partial(truncated, fields=only)),
        Rule(("template_tokens",), functools.partial(template_tokens, fields=only)),
        Rule(("refusal",), functools.partial(refusal, fields=only)),
        Rule(("ai_disclaimer",), functools.partial(ai_disclaimer, fields=only)),
        Rule(("meta_text",), functools.partial(meta_text, fields=only)),
    ]
    if field in ("explanation", "response"):
        low, high = getattr(params, f"min_{field}_words"), getattr(params, f"max_{field}_words")
        rules.append(Rule((f"{field}_too_short", f"{field}_too_long"), functools.partial(word_bounds, field=field, low=low, high=high)))
    rules += [
        Rule(("not_english",), functools.partial(english, fields=only)),
        Rule(("repetition",), functools.partial(repetition, max_ratio=params.max_repetition_ratio, fields=only)),
    ]
    if field == "explanation":
        rules += [
            Rule(("not_first_person",), first_person),
            Rule(("third_person_explanation",), functools.partial(person, field=field, own=FIRST_PERSON, reason="third_person_explanation")),
        ]
    if field == "response":
        rules += [
            Rule(("not_second_person",), second_person),
            Rule(("third_person_response",), functools.partial(person, field=field, own=SECOND_PERSON, reason="third_person_response")),
            Rule(("writer_as_friend",), writer_as_friend),
            Rule(("copied_explanation",), functools.partial(copied_explanation, max_ratio=params.max_copy_ratio)),
        ]
    return rules


def check_reasons(field: str, params: FilterParams) -> tuple[str, ...]:
    """Every reason ``make_check(field, ...)`` may give, in the order checked."""
    return declared_reasons(text_rules(field, params)) + tuple(reason for _, _, reason in ALIGNMENT[field])


def alignment_drops(records: Sequence[dict], field: str, embed: Embed, params: AlignParams) -> list[Drop | None]:
    """The align stage's cosine bars for ``field``, on cosines rounded as align.py rounds them."""
    if not records:
        return []
    checks = ALIGNMENT[field]
    n = len(records)
    vectors = embed([r[field] for r in records] + [r[other] for other, _, _ in checks for r in records])
    own = vectors[:n]
    verdicts: list[Drop | None] = [None] * n
    for k, (other, param, reason) in enumerate(checks, start=1):
        cosines = row_cosines(vectors[k * n : (k + 1) * n], own)
        bound = getattr(params, param)
        for i, value in enumerate(cosines):
            if verdicts[i] is None and value < bound:
                verdicts[i] = Drop(reason, f"{other}~{field} cosine {value:.4f} < {param}={bound}")
    return verdicts


def make_check(field: str, filter_params: FilterParams, align_params: AlignParams, embed: Embed) -> Check:
    """Text rules on every record, then one embedding call for the alignment of those that pass."""
    rules = text_rules(field, filter_params)

    def check(records: Sequence[dict]) -> list[Drop | None]:
        verdicts = [drop for _, drop in run_filters(records, rules)]
        passed = [i for i, v in enumerate(verdicts) if v is None]
        for i, drop in zip(passed, alignment_drops([records[i] for i in passed], field, embed, align_params), strict=True):
            verdicts[i] = drop
        return verdicts

    return check


def stage_check(field: str, params: Params) -> tuple[Check | None, tuple[str, ...]]:
    """The check of a generation stage and its reasons; (None, ()) when ``generation.checks`` is off."""
    if not params.generation.checks:
        return None, ()
    from synthempathy.embeddings import Embedder

    embedder = Embedder(params.embedding.model, params.embedding.batch_size)
    return make_check(field, params.filter, params.align, embedder.encode), check_reasons(field, params.filter)
