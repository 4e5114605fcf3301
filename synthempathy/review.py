"""The review sheet, data/corpus/review.md: real pairs of a corpus version for a person to read.

Four parts: a seeded sample of final pairs, each as its scenario -> story -> explanation ->
response chain with its scores; the pairs with the highest and the lowest empathy; one rejected
record per (stage, reason), as it was when that stage dropped it, with the detail; the
crisis-flagged pairs. Texts are blockquotes, not table cells, so long ones stay readable.

Pure and deterministic: every pick depends only on the global seed and record ids (a pair's
rank is a hash of both, as for LLM seeds), so the same corpus gives the same bytes, and a
larger corpus keeps the earlier picks that are still in it near the top.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from synthempathy.empathy.data import MECHANISMS
from synthempathy.filters import SIMILARITY_FIELDS
from synthempathy.pii import PiiConfig, scrub
from synthempathy.records import scenario_id_of, sort_key, sorted_by_id
from synthempathy.seeding import derive_seed

PURPOSE = "review"  # salt of the seeded picks
CHAIN = (
    ("scenario", "Scenario (SAD stressor)"),
    ("story", "Story (brainstorm)"),
    ("explanation", "Explanation (the seeker, first person)"),
    ("response", "Response"),
)
CRISIS_MARK = "⚠ crisis"


@dataclass(frozen=True)
class RejectionExample:
    stage: str
    reason: str
    count: int  # records dropped for this (stage, reason)
    rejection: Mapping  # the picked {id, stage, reason, detail}


def seeded_order(records: Iterable[Mapping], seed: int) -> list[Mapping]:
    """Records in a fixed pseudo-random order: by a hash of (seed, id), ties by id."""
    return sorted(records, key=lambda r: (derive_seed(seed, PURPOSE, r["id"]), sort_key(r["id"])))


def sample(corpus: Sequence[Mapping], seed: int, n: int) -> list[Mapping]:
    """``n`` seeded picks, shown in id order."""
    return sorted_by_id(seeded_order(corpus, seed)[:n])


def extremes(corpus: Sequence[Mapping], n: int) -> tuple[list[Mapping], list[Mapping]]:
    """(the ``n`` highest-empathy pairs, best first; the ``n`` lowest of the others, worst first)."""
    best = sorted(corpus, key=lambda r: (-r["empathy"], sort_key(r["id"])))[:n]
    shown = {r["id"] for r in best}
    worst = sorted((r for r in corpus if r["id"] not in shown), key=lambda r: (r["empathy"], sort_key(r["id"])))[:n]
    return best, worst


def rejection_examples(rejections: Iterable[Mapping], seed: int) -> list[RejectionExample]:
    """One seeded example per (stage, reason), the most frequent reason first."""
    groups: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    for r in rejections:
        groups[(r["stage"], r["reason"])].append(r)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [RejectionExample(stage, reason, len(group), seeded_order(group, seed)[0]) for (stage, reason), group in ordered]


def latest_records(ids: Iterable[str], sources: Sequence[Iterable[Mapping]], scenarios: Iterable[Mapping]) -> dict[str, Mapping]:
    """Each id's record in the first of ``sources`` that has it. Give the stage files latest first
    (scored, pairs, explanations, deduplicated stories, stories): a record dropped by a stage is
    then found as that stage received it. A story brainstorm dropped exists in no file: it is
    shown as its scenario (SAD stressor), from ``scenarios`` (records of data/scenarios.jsonl)."""
    missing = set(ids)
    found: dict[str, Mapping] = {}
    for source in sources:
        if not missing:
            break
        for record in source:
            if record["id"] in missing:
                found[record["id"]] = record
                missing.discard(record["id"])
    by_scenario = defaultdict(list)
    for record_id in missing:
        by_scenario[scenario_id_of(record_id)].append(record_id)
    for s in scenarios:
        for record_id in by_scenario.get(s["id"], ()):
            found[record_id] = {"id": record_id, "scenario_id": s["id"], "category": s["category"], "severity": s["severity"], "scenario": s["text"]}
    return found


def as_rejected(rejection: Mapping, record: Mapping | None) -> Mapping | None:
    """The record as the rejection saw it. A failed generation attempt carries its own text (its
    record may have been kept with a later attempt): the chain up to that field, then that text."""
    fields = [f for f, _ in CHAIN]
    own = [f for f in fields if f in rejection]
    if not own:
        return record
    last = fields.index(own[-1])
    return {**{k: v for k, v in (record or {}).items() if k not in fields[last:]}, **{f: rejection[f] for f in own}}


def _quote(text: str, pii: PiiConfig) -> str:
    """A blockquote of ``text``: personal data scrubbed (a rejected record never went through the
    filter's scrub), '<' escaped (an HTML-like token such as a leaked `</s>` would vanish when
    rendered), blank lines kept inside the quote."""
    text, _ = scrub(text.strip(), pii)
    return "\n".join(f"> {line}".rstrip() for line in text.replace("<", "&lt;").splitlines()) or ">"


def _scores(record: Mapping) -> str:
    """One line of whatever scores the record carries (the later the stage, the more)."""
    parts = []
    if "empathy" in record:
        parts.append(f"empathy **{record['empathy']:.2f}**")
        parts += [f"{m.upper()} {record[m]:.2f} (level {record[f'{m}_level']})" for m in MECHANISMS if m in record]
    sims = [f"{f.removesuffix('_similarity')} {record[f]:.2f}" for f in SIMILARITY_FIELDS if f in record]
    if sims:
        parts.append("similarity " + " / ".join(sims))
    return " · ".join(parts)


def _chain(record: Mapping, pii: PiiConfig) -> list[str]:
    """The record's category, severity, crisis mark, scores and texts in pipeline order (its id
    is in the heading or example line above)."""
    facts = [record.get("category"), f"severity {record['severity']:g}" if "severity" in record else None]
    if record.get("crisis"):
        facts.append(f"**{CRISIS_MARK}**")
    lines = [" · ".join(f for f in facts if f), ""] if any(facts) else []
    scores = _scores(record)
    if scores:
        lines += [scores, ""]
    for field, label in CHAIN:
        if record.get(field):
            lines += [f"**{label}**", "", _quote(record[field], pii), ""]
    return lines


def _pairs_section(title: str, records: Sequence[Mapping], empty: str, pii: PiiConfig) -> list[str]:
    lines = [f"## {title}", ""]
    if not records:
        return lines + [empty, ""]
    for i, record in enumerate(records, start=1):
        lines += [f"### {i}. {record['id']}", "", *_chain(record, pii)]
    return lines


def _rejections_section(examples: Sequence[RejectionExample], records: Mapping[str, Mapping], total: int, pii: PiiConfig) -> list[str]:
    lines = ["## 4. Rejected: one example per reason", ""]
    if not examples:
        return lines + ["No record was rejected.", ""]
    lines += [f"{total} records were dropped along the way (all in the merged rejected records); the most frequent reason first.", ""]
    for e in examples:
        lines += [f"### {e.stage}: {e.reason} ({e.count} {'record' if e.count == 1 else 'records'})", ""]
        lines += [f"Example `{e.rejection['id']}`: {e.rejection.get('detail') or '(no detail)'}", ""]
        record = as_rejected(e.rejection, records.get(e.rejection["id"]))
        lines += _chain(record, pii) if record else ["(its text is in none of the stage files)", ""]
    return lines


def review_sheet(
    corpus: Sequence[Mapping],
    examples: Sequence[RejectionExample],
    rejected_records: Mapping[str, Mapping],
    rejected_total: int,
    seed: int,
    sample_size: int,
    extremes_size: int,
    pii: PiiConfig,
) -> str:
    """The whole Markdown sheet. ``examples``: from ``rejection_examples``; ``rejected_records``:
    their records by id, from ``latest_records``."""
    best, worst = extremes(corpus, extremes_size)
    crisis = [r for r in corpus if r.get("crisis")]
    shown_crisis = sample(crisis, seed, sample_size)
    lines = [
        "# Review sheet",
        "",
        f"{len(corpus)} pairs in the corpus, {rejected_total} records rejected on the way. "
        "Scores are EPITOME expected levels from 0 (none) to 2 (strong): ER emotional reactions, IP interpretations, "
        "EX explorations; empathy is their mean. Similarities are MiniLM cosines of the explanation with the scenario "
        f"and the story, and of the response with the explanation. **{CRISIS_MARK}** marks a pair whose scenario or "
        "explanation mentions self-harm or suicide (`filter.crisis_policy`). Personal data in the texts "
        "(`filter.pii_types`) is shown as placeholders.",
        "",
        "1. Sample · 2. Highest empathy · 3. Lowest empathy · 4. Rejected, one per reason · 5. Crisis-flagged pairs",
        "",
    ]
    lines += _pairs_section(
        f"1. Sample: {min(sample_size, len(corpus))} of {len(corpus)} pairs, picked by seed {seed}",
        sample(corpus, seed, sample_size),
        "The corpus is empty.",
        pii,
    )
    lines += _pairs_section("2. Highest empathy", best, "The corpus is empty.", pii)
    lines += _pairs_section("3. Lowest empathy", worst, "No pairs beyond the highest ones." if corpus else "The corpus is empty.", pii)
    lines += _rejections_section(examples, rejected_records, rejected_total, pii)
    crisis_title = f"5. Crisis-flagged pairs: {len(crisis)}" + (f", {len(shown_crisis)} shown" if len(shown_crisis) < len(crisis) else "")
    lines += _pairs_section(crisis_title, shown_crisis, "No pair of this corpus is crisis-flagged.", pii)
    return "\n".join(lines).rstrip("\n") + "\n"
