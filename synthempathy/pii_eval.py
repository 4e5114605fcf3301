"""How well a PII scrubber does: recall per type on the labelled probe set, and how many real
sentences (SAD stressors, EPITOME Reddit posts) it changes. The test suite asserts the goals
on these numbers; benchmarks/bench_pii.py prints them for the old and the new scrubber."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from synthempathy.empathy.data import load_epitome_file
from synthempathy.errors import InputError
from synthempathy.pii import Span
from synthempathy.scenarios import load_sad

PROBES = Path("tests/fixtures/pii_probes.jsonl")
SAD = Path("data/seeds/SAD_v1.csv")
EPITOME_DIR = Path("data/external/epitome")
# Goals of issue 19: per-type recall on the probes; share of real sentences a scrub changes.
MIN_RECALL = 0.95
MAX_FALSE_SCRUB_RATE = 0.01

Finder = Callable[[str], Sequence[Span]]


@dataclass(frozen=True)
class Probe:
    text: str
    pii: tuple[Span, ...]  # empty: a hard negative that must stay unchanged
    note: str


def load_probes(path: str | Path = PROBES) -> list[Probe]:
    """The probe file: one JSON object a line, ``{text, pii: [{type, start, end, value}], note}``."""
    probes = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        row = json.loads(line)
        spans = tuple(Span(s["start"], s["end"], s["type"]) for s in row["pii"])
        for span, labelled in zip(spans, row["pii"], strict=True):
            if row["text"][span.start : span.end] != labelled["value"]:
                raise InputError(f"{path}:{line_no}: span {span.start}:{span.end} is not {labelled['value']!r}; fix the offsets")
        probes.append(Probe(row["text"], spans, row.get("note", "")))
    return probes


@dataclass(frozen=True)
class ProbeScores:
    found: dict[str, int]  # labelled spans covered by a found span of the same type, per type
    total: dict[str, int]  # labelled spans per type
    extra: list[tuple[str, str]]  # (text, found value) for found spans that overlap no label
    negatives: int  # probes without PII
    changed_negatives: list[str]  # hard negatives in which something was found

    def recall(self, kind: str) -> float:
        return self.found[kind] / self.total[kind]

    @property
    def false_scrub_rate(self) -> float:
        return len(self.changed_negatives) / self.negatives


def score_probes(probes: Sequence[Probe], find: Finder) -> ProbeScores:
    """A label counts as found when a found span of its type covers it."""
    found: dict[str, int] = {}
    total: dict[str, int] = {}
    extra, changed = [], []
    for probe in probes:
        spans = find(probe.text)
        for label in probe.pii:
            total[label.type] = total.get(label.type, 0) + 1
            hit = any(s.type == label.type and s.start <= label.start and s.end >= label.end for s in spans)
            found[label.type] = found.get(label.type, 0) + hit
        extra += [(probe.text, probe.text[s.start : s.end]) for s in spans if not any(s.start < label.end and label.start < s.end for label in probe.pii)]
        if not probe.pii and spans:
            changed.append(probe.text)
    return ProbeScores(found, total, extra, sum(not p.pii for p in probes), changed)


def real_texts(n: int, seed: int, sad: str | Path = SAD, epitome_dir: str | Path = EPITOME_DIR) -> list[str]:
    """``n`` real texts, half SAD sentences, half EPITOME seeker posts and responses (each distinct
    text once), picked by a seeded sample: the same list on every run."""
    sentences = sorted({" ".join(s.split()) for s in load_sad(sad)["sentence"]} - {""})
    posts: set[str] = set()
    for path in sorted(Path(epitome_dir).glob("*.csv")):  # the ER, IP and EX files share most posts
        frame = load_epitome_file(path)
        posts.update(frame["seeker"], frame["response"])
    if not posts:
        raise InputError(f"{epitome_dir}: no EPITOME CSV files; see data/external/epitome/README.md")
    rng = random.Random(seed)
    return rng.sample(sentences, n // 2) + rng.sample(sorted(posts), n - n // 2)
