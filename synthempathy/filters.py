"""Rule-based filters of the final corpus, datatrove-style.

Each rule is a small pure function of one record that returns ``None`` (pass), a ``Drop``
with a named reason and a detail, or, for the two transforms (crisis flag, PII scrub), the
new record; a ``Rule`` pairs it with the reasons it may drop for, and those declarations are
the stage's list of reasons. ``run_filters`` streams records through the rules in order and
yields every record with its verdict, so counts per reason fall out of the stream. The first
failing rule names the rejection; cheap, unambiguous rules come first.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from synthempathy.params import FilterParams
from synthempathy.pii import PII_TYPES, PiiConfig, scrub
from synthempathy.records import sort_key
from synthempathy.results import StageResult
from synthempathy.text import ngram_overlap, repetition_ratio, word_count, words

STAGE = "filter"
NGRAM = 4  # copy and loop checks compare word 4-grams
ENGLISH_MIN_STOPWORD_RATIO = 0.25  # English prose ~0.45-0.55; Spanish/French ~0.1; CJK ~0
TEXT_FIELDS = ("explanation", "response")
PII_FIELDS = ("scenario", "story", "explanation", "response")  # every published free-text field
PII_FOUND = "pii_found"  # (type, count) pairs the scrub put on a record; not a corpus field
SIMILARITY_FIELDS = ("scenario_similarity", "story_similarity", "response_similarity")
EMPATHY_FIELDS = ("er", "ip", "ex", "empathy", "er_level", "ip_level", "ex_level")
CORPUS_FIELDS = ("id", "scenario_id", "category", "severity", "scenario", "story", "explanation", "response", *SIMILARITY_FIELDS)
REQUIRED_FIELDS = (*CORPUS_FIELDS, "explanation_finish_reason", "response_finish_reason")


@dataclass(frozen=True)
class Drop:
    reason: str
    detail: str = ""
    pii_found: tuple[tuple[str, int], ...] = ()  # a pii drop's (type, count) pairs, for metrics


@dataclass(frozen=True)
class Rule:
    reasons: tuple[str, ...]  # every reason its Drops may carry
    check: Callable[[dict], None | Drop | dict]


def _any_of(*patterns: str, flags: int = re.IGNORECASE) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags)


# Chat-template and role tokens a model leaks when its template is wrong.
TEMPLATE_TOKENS = _any_of(
    r"<\|[a-z_]+\|>",  # <|im_start|>, <|im_end|>, <|endoftext|>, <|eot_id|>
    r"\[/?INST\]",
    r"<</?SYS>>",
    r"</?s>",
    r"^\s*(?:assistant|user|system)\s*:",
    r"^\s*#{2,}\s*(?:instruction|response|input)\b",
    flags=re.IGNORECASE | re.MULTILINE,
)
# Narrow on purpose: "I cannot sleep" and "I can't help but cry" are what a stressed person writes.
REFUSAL = _any_of(
    r"\bI(?:'m| am) (?:sorry|afraid),? but I (?:can(?:'t|not)|am unable|won't)\b",
    r"\bI (?:can(?:'t|not)|can not|am unable to|won't) (?:help with|assist|provide|fulfil+|comply|create|generate)\b",
    r"\bI (?:can(?:'t|not)|won't) (?:write|rewrite) (?:this|that|a|an|the) (?:story|response|explanation|content)\b",
    r"\b(?:is|goes) against (?:my|the) (?:guidelines|policy|policies|programming)\b",
)
AI_DISCLAIMER = _any_of(
    r"\bas an? (?:AI|artificial intelligence|(?:large )?language model|chatbot|virtual assistant)\b",
    r"\bI(?:'m| am) (?:just |only |merely )?(?:an? )?(?:AI|artificial intelligence|(?:large )?language model|chatbot|virtual assistant)\b",
    r"\bI (?:don't|do not) have (?:personal )?(?:feelings|emotions|experiences) (?:of my own|like humans)\b",
)
META_TEXT = _any_of(
    r"^\s*(?:sure|certainly|absolutely|of course|okay|ok)\b[!,.:]?\s*(?:here(?:'s| is| are)|I(?:'d| would) be happy|I can)\b",
    r"\bhere(?:\s+is|'s)\s+(?:a|an|the|my|your)?\s*(?:[\w-]+\s+){0,4}?(?:response|reply|rewrite|version|story|explanation|message|paragraph)\b[^\n]{0,40}:",
    r"\b(?:rewritten|first[- ]person) (?:version|story|explanation|narrative)\b",
    r"\bI hope (?:this|my) (?:response|rewrite|version) (?:helps|meets)\b",
    r"^\s*(?:note|word count|explanation|response)\s*:",
    r"\A\s*(?:sure|certainly|absolutely)\s*[!,.:]",  # an assistant's opener, not a friend's message
    r"\bhow (?:can|may) I (?:help|assist) you\b",
    r"\b(?:tell|telling|told|write|writing) (?:the|this) story from my (?:perspective|point of view)\b",
    flags=re.IGNORECASE | re.MULTILINE,
)
FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves"})
SECOND_PERSON = frozenset({"you", "your", "yours", "yourself", "yourselves"})
STOPWORDS = ENGLISH_STOP_WORDS | {"i"}

# Self-harm or suicide in the seeker's text: flagged or excluded by filter.crisis_policy.
CRISIS = _any_of(
    r"\bsuicid\w*",
    r"\b(?:kill|killing|hang|hanging|harm|harming|cut|cutting) myself\b",
    r"\b(?:end|ending|take|taking) my (?:own )?life\b",
    r"\b(?:want(?:ed|s)? to|wanna) die\b",
    r"\bwish I (?:was|were) dead\b",
    r"\bbetter off dead\b",
    r"\b(?:no reason|nothing) to live for\b",
    r"\bnot worth living\b",
    r"\bself[- ]?harm\w*",
    r"\boverdos\w*",
    r"\bslit (?:my )?wrists?\b",
)
# A response to a crisis text that encourages self-harm or gives a method. Negations
# ("please don't hurt yourself") never match: no "not/never/don't" between cue and act.
HARMFUL_ADVICE = _any_of(
    r"\b(?:you should|just|go ahead and|why not|might as well|you deserve to)\s+(?:(?!(?:not|never|don't|dont)\b)[\w']+\s+){0,2}?(?:kill|hurt|harm|cut|end)\s+(?:yourself|your life|it all)\b",
    r"\b(?:nobody|no one) (?:would|will) (?:even )?miss you\b",
    r"\b(?:the world|everyone|they) (?:would|will) be better off without you\b",
    r"\byou(?:'d| would) be better off dead\b",
    r"\b(?:lethal|fatal) (?:dose|amount)\b",
    r"\bhow many (?:pills|tablets)\b",
    r"\b(?:slit|cut) (?:your|the) wrists?\b",
    r"\bhang yourself\b",
    r"\bjump (?:off|from) (?:a|the) (?:bridge|building|roof|cliff)\b",
    r"\bpainless (?:way|method)s? to (?:die|go)\b",
    r"\boverdose on\b",
)


def _heads(text: str) -> list[str]:
    """Words cut at the apostrophe: "I'm" -> "i", "you're" -> "you" (pronoun and stop-word lists)."""
    return [w.replace("’", "'").split("'")[0] for w in words(text)]


def _search(pattern: re.Pattern, record: dict, fields: Sequence[str], reason: str) -> Drop | None:
    for field in fields:
        match = pattern.search(record[field].replace("’", "'"))  # the patterns spell apostrophes straight
        if match:
            return Drop(reason, f"{field}: {match.group(0).strip()!r}")
    return None


def truncated(record: dict, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    cut = [f for f in fields if record[f"{f}_finish_reason"] == "length"]
    return Drop("truncated", f"{', '.join(cut)} hit max_tokens") if cut else None


def template_tokens(record: dict, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    return _search(TEMPLATE_TOKENS, record, fields, "template_tokens")


def refusal(record: dict, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    return _search(REFUSAL, record, fields, "refusal")


def ai_disclaimer(record: dict, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    return _search(AI_DISCLAIMER, record, fields, "ai_disclaimer")


def meta_text(record: dict, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    return _search(META_TEXT, record, fields, "meta_text")


def stopword_ratio(text: str) -> float:
    """Share of words that are English function words: a fast, deterministic English test."""
    heads = _heads(text)
    return sum(h in STOPWORDS for h in heads) / len(heads) if heads else 0.0


def english(record: dict, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    for field in fields:
        ratio = stopword_ratio(record[field])
        if ratio < ENGLISH_MIN_STOPWORD_RATIO:
            return Drop("not_english", f"{field}: stop-word ratio {ratio:.2f} < {ENGLISH_MIN_STOPWORD_RATIO}")
    return None


def word_bounds(record: dict, field: str, low: int, high: int) -> Drop | None:
    n = word_count(record[field])
    if n < low:
        return Drop(f"{field}_too_short", f"{n} words < min_{field}_words={low}")
    if n > high:
        return Drop(f"{field}_too_long", f"{n} words > max_{field}_words={high}")
    return None


def first_person(record: dict) -> Drop | None:
    """The explanation is the seeker speaking: it must say I/me/my (or we/our)."""
    return None if FIRST_PERSON.intersection(_heads(record["explanation"])) else Drop("not_first_person", "no first-person pronoun in explanation")


def second_person(record: dict) -> Drop | None:
    """The response talks to the seeker: it must say you/your."""
    return None if SECOND_PERSON.intersection(_heads(record["response"])) else Drop("not_second_person", "no second-person pronoun in response")


def copied_explanation(record: dict, max_ratio: float) -> Drop | None:
    ratio = ngram_overlap(record["response"], record["explanation"], NGRAM)
    return Drop("copied_explanation", f"{ratio:.2f} of response {NGRAM}-grams in explanation > {max_ratio}") if ratio > max_ratio else None


def repetition(record: dict, max_ratio: float, fields: Sequence[str] = TEXT_FIELDS) -> Drop | None:
    for field in fields:
        ratio = repetition_ratio(record[field], NGRAM)
        if ratio > max_ratio:
            return Drop("repetition", f"{field}: {ratio:.2f} of {NGRAM}-grams repeat > {max_ratio}")
    return None


def is_crisis(record: dict) -> bool:
    return any(CRISIS.search(record[f]) for f in ("scenario", "explanation"))


def harmful_advice(record: dict) -> Drop | None:
    """Dropped under every crisis policy: a crisis text must never get harmful advice."""
    return _search(HARMFUL_ADVICE, record, ("response",), "harmful_advice") if is_crisis(record) else None


def crisis(record: dict, policy: str) -> Drop | dict:
    flagged = is_crisis(record)
    if flagged and policy == "exclude":
        return Drop("crisis_excluded", "self-harm or suicide in scenario or explanation")
    return {**record, "crisis": flagged}


def pii(record: dict, config: PiiConfig, policy: str) -> None | Drop | dict:
    """Scrub every published text field (``scenario`` quotes the seed, which may be a user's own
    text), or drop the pair naming the field and the PII types found, never the values."""
    scrubbed = {f: scrub(record[f], config) for f in PII_FIELDS}
    found = sum((counts for _, counts in scrubbed.values()), Counter())
    if not found:
        return None
    if policy == "drop":
        detail = "; ".join(f"{f}: {', '.join(sorted(counts))}" for f, (_, counts) in scrubbed.items() if counts)
        return Drop("pii", detail, pii_found=tuple(sorted(found.items())))
    return {**record, **{f: text for f, (text, _) in scrubbed.items()}, PII_FOUND: tuple(sorted(found.items()))}


def low_empathy(record: dict, min_empathy: float | None) -> Drop | None:
    if min_empathy is None or record["empathy"] >= min_empathy:
        return None
    return Drop("low_empathy", f"empathy={record['empathy']} < min_empathy={min_empathy}")


def build_rules(params: FilterParams) -> list[Rule]:
    """The rules in order, bound to their params; the first failing one names the rejection."""
    return [
        Rule(("truncated",), truncated),
        Rule(("template_tokens",), template_tokens),
        Rule(("refusal",), refusal),
        Rule(("ai_disclaimer",), ai_disclaimer),
        Rule(("meta_text",), meta_text),
        Rule(
            ("explanation_too_short", "explanation_too_long"),
            functools.partial(word_bounds, field="explanation", low=params.min_explanation_words, high=params.max_explanation_words),
        ),
        Rule(
            ("response_too_short", "response_too_long"),
            functools.partial(word_bounds, field="response", low=params.min_response_words, high=params.max_response_words),
        ),
        Rule(("not_english",), english),  # after the length bounds: a short text has too few words for a stop-word ratio
        Rule(("not_first_person",), first_person),
        Rule(("not_second_person",), second_person),
        Rule(("copied_explanation",), functools.partial(copied_explanation, max_ratio=params.max_copy_ratio)),
        Rule(("repetition",), functools.partial(repetition, max_ratio=params.max_repetition_ratio)),
        Rule(("harmful_advice",), harmful_advice),
        Rule(("crisis_excluded",), functools.partial(crisis, policy=params.crisis_policy)),
        Rule(("pii",), functools.partial(pii, config=params.pii, policy=params.pii_policy)),
        Rule(("low_empathy",), functools.partial(low_empathy, min_empathy=params.min_empathy)),
    ]


def declared_reasons(rules: Sequence[Rule]) -> tuple[str, ...]:
    return tuple(reason for rule in rules for reason in rule.reasons)


def run_filters(records: Iterable[dict], rules: Sequence[Rule]) -> Iterator[tuple[dict, Drop | None]]:
    """Stream each record through the rules: yield (final record, None) or (record, its Drop)."""
    for record in records:
        verdict = None
        for rule in rules:
            out = rule.check(record)
            if isinstance(out, Drop):
                verdict = out
                break
            if out is not None:
                record = out
        yield record, verdict


def required_fields(params: FilterParams) -> tuple[str, ...]:
    return REQUIRED_FIELDS + (("empathy",) if params.min_empathy is not None else ())


def corpus_record(record: dict) -> dict:
    """The published fields only, in a fixed order; empathy scores when the score stage added them."""
    return {
        **{f: record[f] for f in CORPUS_FIELDS},
        **{f: record[f] for f in EMPATHY_FIELDS if f in record},
        "crisis": record["crisis"],
    }


def filter_pairs(records: Sequence[dict], params: FilterParams, rules: Sequence[Rule] | None = None) -> StageResult:
    """The corpus records and rejections of the scored pairs, with crisis and PII counts; ``rules``
    defaults to ``build_rules(params)``."""
    rules = build_rules(params) if rules is None else rules
    result = StageResult(STAGE, declared_reasons(rules), records_in=len(records))
    scrubbed, dropped = Counter(), Counter()
    scrubbed_records = 0
    for record, drop in run_filters(records, rules):
        if drop is not None:
            result.reject(record["id"], drop.reason, drop.detail)
            dropped.update(dict(drop.pii_found))
            continue
        scrubbed_records += PII_FOUND in record
        scrubbed.update(dict(record.get(PII_FOUND, ())))
        result.keep(corpus_record(record))
    result.extra_metrics = {
        "crisis_flagged": sum(r["crisis"] for r in result.kept),
        "pii_scrubbed": scrubbed_records,
        # PII spans per type: replaced by placeholders in kept pairs / found in pairs dropped for PII
        "pii_scrubbed_by_type": {kind: scrubbed[kind] for kind in PII_TYPES},
        "pii_dropped_by_type": {kind: dropped[kind] for kind in PII_TYPES},
    }
    return result


def merge_rejections(groups: Iterable[Sequence[dict]]) -> list[dict]:
    """Every stage's rejections, sorted by id; a stable sort keeps pipeline order within an id."""
    return sorted((r for group in groups for r in group), key=lambda r: sort_key(r["id"]))


def retention_funnel(counts: Mapping[str, int]) -> dict:
    """Record counts after each step and each step's count over the previous; ``steps`` keeps the
    pipeline order, which the counts lose when metrics are written with sorted keys."""
    steps = list(counts)
    ratios = {b: round(counts[b] / counts[a], 4) if counts[a] else 0.0 for a, b in itertools.pairwise(steps)}
    return {"steps": steps, "counts": dict(counts), "ratio_to_previous": ratios}
