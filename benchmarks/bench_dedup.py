"""ExactSubstr at paper scale: ``find_substr_duplicates`` on a synthetic 105k-story, ~60 MB
corpus with planted duplicates.

Wall time and peak RSS are measured in a fresh process that reads the corpus and runs the
search (goal: <= 60 s, <= 4 GB). Correctness: every planted duplicate is found with its
source, and on a sample of a few hundred texts (planted pairs included) the result equals a
brute-force search (shared threshold-byte n-grams), computed in the same run.

    python -m benchmarks.bench_dedup            # writes benchmarks/results/dedup.md
    python -m benchmarks.bench_dedup --smoke    # seconds; prints only
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import busy, header, write_result
from synthempathy.dedup.exact_hash import normalise
from synthempathy.dedup.exact_substr import ExactSubstrConfig, find_substr_duplicates

THRESHOLD = 100  # params.yaml dedup.dup_length_threshold
WORDS_PER_STORY = 66  # of ~8 bytes with the space: 105k stories make ~60 MB
# Phrases every story generator repeats; shorter than THRESHOLD, so they must not flag anything.
STOCK = ["as the sun set over the city,", "she took a deep breath and", "he couldn't shake the feeling that", "for the first time in weeks,"]


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    planted: dict[int, int]  # copy -> source


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ta", "ro", "su", "vi", "de", "pa", "an", "el", "or", "us", "th", "sh", "ir", "en"]
    return sorted({"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(size * 2)})[:size]


def synthetic_corpus(n: int, seed: int = 0) -> Corpus:
    """Random-word stories with stock phrases; 1% of the later half carry a 150-byte passage of
    an earlier story, and 0.5% are that story again with other case and spacing."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    texts = []
    for _ in range(n):
        words = rng.choices(vocab, k=WORDS_PER_STORY)
        words.insert(rng.randrange(len(words)), rng.choice(STOCK))
        texts.append(" ".join(words).capitalize() + ".")
    planted: dict[int, int] = {}
    copies = rng.sample(range(n // 2, n), k=max(2, n * 3 // 200))
    for k, copy in enumerate(copies):
        source = rng.randrange(n // 2)
        if k % 3 == 2:
            texts[copy] = "  ".join(texts[source].upper().split())
        else:
            start = texts[source].index(" ", rng.randrange(len(texts[source]) - 200)) + 1
            cut = texts[copy].index(" ", rng.randrange(len(texts[copy]) // 2))
            texts[copy] = f"{texts[copy][:cut]} {texts[source][start : start + 150]} {texts[copy][cut:]}"
        planted[copy] = source
    return Corpus(texts, planted)


def brute_force(texts: Sequence[str], threshold: int) -> list[int | None]:
    """Text j duplicates the earliest i < j sharing a substring of >= threshold bytes, i.e. a
    threshold-byte n-gram (the definition itself, quadratic)."""
    normed = [normalise(t).encode("utf-8") for t in texts]
    grams = [{b[k : k + threshold] for k in range(len(b) - threshold + 1)} for b in normed]
    return [next((i for i in range(j) if not grams[j].isdisjoint(grams[i])), None) for j in range(len(texts))]


def sample(corpus: Corpus, size: int, seed: int = 1) -> list[int]:
    """Indices of ``size`` texts in corpus order: planted pairs first, the rest at random."""
    rng = random.Random(seed)
    pairs = list(corpus.planted.items())[: size // 4]
    chosen = {i for pair in pairs for i in pair}
    rest = [i for i in range(len(corpus.texts)) if i not in chosen]
    chosen.update(rng.sample(rest, size - len(chosen)))
    return sorted(chosen)


def run_in_child(corpus_file: Path) -> dict:
    """Time and peak RSS of the search alone in a fresh process (corpus loading included in RSS)."""
    code = "import json, sys, time\nfrom benchmarks.bench_dedup import child_main\nprint(json.dumps(child_main(sys.argv[1])))\n"
    out = subprocess.run([sys.executable, "-c", code, str(corpus_file)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(corpus_file: str) -> dict:
    import time

    texts = json.loads(Path(corpus_file).read_text(encoding="utf-8"))
    start = time.perf_counter()
    found = find_substr_duplicates(texts, ExactSubstrConfig(THRESHOLD))
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text()
    hwm_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    return {"seconds": seconds, "peak_rss_gib": hwm_kib / 2**20, "found": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no results file")
    args = parser.parse_args()
    n, n_sample = (2_000, 60) if args.smoke else (105_000, 300)
    busy_before = busy()
    corpus = synthetic_corpus(n)
    megabytes = sum(len(normalise(t).encode("utf-8")) + 1 for t in corpus.texts) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = Path(tmp) / "corpus.json"
        corpus_file.write_text(json.dumps(corpus.texts), encoding="utf-8")
        result = run_in_child(corpus_file)
    found = result["found"]
    planted_ok = sum(found[copy] == source for copy, source in corpus.planted.items())
    flagged = sum(f is not None for f in found)
    picked = sample(corpus, n_sample)
    sample_texts = [corpus.texts[i] for i in picked]
    agrees = find_substr_duplicates(sample_texts, ExactSubstrConfig(THRESHOLD)) == brute_force(sample_texts, THRESHOLD)
    print(
        f"dedup: {n} stories, {megabytes:.1f} MB: {result['seconds']:.1f} s (goal <= 60 s), peak RSS {result['peak_rss_gib']:.2f} GiB "
        f"(goal <= 4 GiB); planted {len(corpus.planted)}, found with source {planted_ok}, flagged {flagged}; "
        f"brute force on {n_sample} texts agrees: {agrees}"
    )
    if args.smoke:
        return
    write_result(
        "dedup.md",
        header("ExactSubstr dedup benchmark", busy_before)
        + f"""
Synthetic corpus: {n:,} random-word stories of ~{WORDS_PER_STORY} words with stock phrases shorter than the
threshold, {megabytes:.1f} MB normalised; {len(corpus.planted):,} planted duplicates (a 150-byte passage of an
earlier story, or an earlier story with other case and spacing). Threshold {THRESHOLD} bytes.

| measure | value | goal |
| --- | --- | --- |
| wall time of `find_substr_duplicates` (fresh process) | {result["seconds"]:.1f} s | <= 60 s |
| peak RSS of that process (corpus included) | {result["peak_rss_gib"]:.2f} GiB | <= 4 GiB |
| planted duplicates found with their source | {planted_ok:,} / {len(corpus.planted):,} | all |
| texts flagged | {flagged:,} | = planted |
| equals brute force on a {n_sample}-text sample (planted pairs included) | {agrees} | True |
""",
    )


if __name__ == "__main__":
    main()
