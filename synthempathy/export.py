"""Release formats of the final corpus: chat-format SFT JSONL, Parquet, and a dataset card.

Every writer is deterministic: the same corpus and metrics give byte-identical files, so DVC
hashes (and the CI check that ``dvc repro`` rebuilds dvc.lock) stay stable.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from synthempathy.errors import InputError
from synthempathy.io import atomic_path
from synthempathy.params import Params
from synthempathy.pii import PLACEHOLDERS
from synthempathy.report import PAPER, length_stats
from synthempathy.text import distinct_n

MECHANISMS = ("er", "ip", "ex", "empathy")


class Provenance(NamedTuple):
    """What the card names so that a copy of the corpus can be traced to what generated it."""

    model_name: str  # the GGUF's file name or the served model id
    model_weights: str  # sha256:<the GGUF's sha256>, or generation.model_revision
    params_sha256: str  # of params.yaml


CRISIS_NOTE = {
    "flag": "Self-harm and suicide content is flagged (`crisis: true`), not removed: filter it for your use.",
    "exclude": "Pairs matching self-harm and suicide patterns were removed; the patterns can miss some.",
}
# Parquet options pinned so that a library default changing never changes the bytes.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True, "write_statistics": True}

PAPER_BIBTEX = """@article{chen2025synthempathy,
  title   = {{SYNTHEMPATHY}: A Scalable Empathy Corpus Generated Using {LLMs} Without Any Crowdsourcing},
  author  = {Chen, Run and Shin, Jun and Hirschberg, Julia},
  journal = {arXiv preprint arXiv:2502.17857},
  year    = {2025}
}"""
SAD_BIBTEX = """@inproceedings{mauriello2021sad,
  title     = {{SAD}: A Stress Annotated Dataset for Recognizing Everyday Stressors in {SMS}-like Conversational Systems},
  author    = {Mauriello, Matthew Louis and Lincoln, Thierry and Hon, Grace and Simon, Dorien and Jurafsky, Dan and Paredes, Pablo},
  booktitle = {Extended Abstracts of the 2021 CHI Conference on Human Factors in Computing Systems (CHI EA)},
  year      = {2021}
}"""
EPITOME_BIBTEX = """@inproceedings{sharma2020empathy,
  title     = {A Computational Approach to Understanding Empathy Expressed in Text-Based Mental Health Support},
  author    = {Sharma, Ashish and Miner, Adam S. and Atkins, David C. and Althoff, Tim},
  booktitle = {EMNLP},
  year      = {2020}
}"""


def chat_messages(user: str, assistant: str | None = None) -> list[dict]:
    """The one prompt format of SFT data and evaluation: the situation alone as the user turn."""
    messages = [{"role": "user", "content": user}]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    return messages


def sft_records(corpus: Sequence[dict]) -> list[dict]:
    """Chat-format SFT records: the explanation as the user turn, the response as the reply."""
    return [{"id": r["id"], "messages": chat_messages(r["explanation"], r["response"])} for r in corpus]


def corpus_table(records: Sequence[dict]) -> pa.Table:
    """Columns in first-seen order over all records (a field missing from a record is null)."""
    columns = list(dict.fromkeys(key for record in records for key in record))
    return pa.table({key: [record.get(key) for record in records] for key in columns})


def write_parquet_atomic(path: str | os.PathLike, records: Sequence[dict]) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(corpus_table(records), tmp, **PARQUET_OPTIONS)


# ---------------------------------------------------------------- dataset card


class MetricsFile(NamedTuple):
    path: str  # named in the card and in errors
    data: Mapping[str, Any]


def _field(metrics: MetricsFile, *keys: str) -> Any:
    """``metrics.data[k1][k2]...``, or an InputError naming the stale metrics file."""
    value: Any = metrics.data
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise InputError(f"{metrics.path}: no {'.'.join(keys)}; rerun the stage that writes it (dvc repro)")
        value = value[key]
    return value


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [item for key, sub in value.items() for item in _flatten(sub, f"{prefix}.{key}" if prefix else str(key))]
    return [(prefix, value)]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _size_category(n: int) -> str:
    # The Hugging Face Hub's size_categories buckets.
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def empathy_means(corpus: Sequence[dict]) -> dict[str, float]:
    """Mean expected EPITOME level per mechanism over the corpus (0 none, 1 weak, 2 strong)."""
    return {m: round(sum(r[m] for r in corpus) / len(corpus), 3) if corpus else 0.0 for m in MECHANISMS}


def _model_param(params: Params) -> str:
    """The param that pins the generation model's weights."""
    if params.generation.engine == "openai":
        return f"generation.model_revision: {params.generation.model_revision}"
    return f"model.path: {params.model.path}"


def pii_section(filter_metrics: MetricsFile, params: Params) -> str:
    """What was scrubbed (or dropped) per PII type, from the filter stage's metrics."""
    scrubbed, dropped = (_field(filter_metrics, key) for key in ("pii_scrubbed_by_type", "pii_dropped_by_type"))
    p = params.filter
    how = (
        "replaced by a placeholder per type"
        if p.pii_policy == "scrub"
        else "a reason to drop the pair (`data/rejected.jsonl` names the types, never the values)"
    )
    rows = [[kind, f"`{PLACEHOLDERS[kind]}`", scrubbed[kind], dropped[kind]] for kind in p.pii_types]
    return (
        "## Personal data\n\n"
        f"Personal data in `scenario`, `story`, `explanation` and `response` is {how} (`filter.pii_policy: {p.pii_policy}`). "
        f"Phone numbers count in international format and in the national formats of {', '.join(p.pii_phone_regions)}; "
        "toll-free and other service numbers (helplines) are kept.\n\n" + _table(["type", "placeholder", "spans scrubbed", "spans in dropped pairs"], rows)
    )


def dataset_card(
    corpus: Sequence[dict], filter_metrics: MetricsFile, empathy_metrics: MetricsFile, scorer_metrics: MetricsFile, params: Params, provenance: Provenance
) -> str:
    """README.md of the corpus: what the files are, how they were made, licences, citation.

    The metrics are the filter's, the score stage's and the scorer's. Composition, lengths,
    diversity and empathy means are computed from ``corpus`` with the report's functions, so the
    card always describes the exported rows.
    """
    n = len(corpus)
    model_name = provenance.model_name
    if _field(filter_metrics, "records_out") != n:
        raise InputError(f"{filter_metrics.path}: records_out differs from the corpus size {n}; rerun the filter stage (dvc repro)")
    counts = _field(filter_metrics, "funnel", "counts")
    funnel = [(step, counts[step]) for step in _field(filter_metrics, "funnel", "steps")]
    rejected = {reason: count for reason, count in _field(filter_metrics, "rejected").items() if count}
    categories = sorted(Counter(r["category"] for r in corpus).items())
    lengths = {field: length_stats([r[field] for r in corpus]) for field in ("explanation", "response")}
    responses = [r["response"] for r in corpus]
    empathy = empathy_means(corpus)
    scorer_rows = {
        m: [
            _field(scorer_metrics, "heldout", m, "model", "accuracy"),
            _field(scorer_metrics, "heldout", m, "model", "macro_f1"),
            _field(scorer_metrics, "heldout", m, "majority", "macro_f1"),
        ]
        for m in MECHANISMS[:3]
    }
    sampling = {stage: getattr(params, stage) for stage in ("brainstorm", "rewrite", "respond")}
    front_matter = "\n".join(
        [
            "---",
            "language: [en]",
            "license: other",
            "license_name: mixed-see-card",
            "pretty_name: SYNTHEMPATHY (reproduction)",
            f"size_categories: [{_size_category(n)}]",
            "task_categories: [text-generation]",
            "tags: [empathy, mental-health, synthetic, sft]",
            "configs:",
            "  - config_name: default",
            "    data_files:",
            "      - split: train",
            "        path: synthempathy.parquet",
            "---",
        ]
    )
    sections = [
        front_matter,
        "# SYNTHEMPATHY corpus (reproduction)",
        f"{n:,} pairs of a first-person **explanation** of a stressful situation and an empathetic **response**, "
        f"generated without crowdsourcing by `{model_name}` from the everyday stressors of SAD, following "
        f"Chen, Shin & Hirschberg (2025), arXiv:2502.17857 (the paper's corpus: {PAPER['pairs']:,} pairs).",
        "## Files\n\n"
        "- `synthempathy.jsonl`: the corpus, one JSON object per pair.\n"
        '- `synthempathy.parquet`: the same rows; `datasets.load_dataset("parquet", data_files="synthempathy.parquet")`.\n'
        "- `sft.jsonl`: chat-format SFT records `{id, messages: [user: explanation, assistant: response]}`.\n\n"
        "Fields: `explanation`, `response`; provenance `id`, `scenario_id`, `category`, `severity` (SAD, out of 10), "
        "`scenario`, `story`; `*_similarity` (all-MiniLM-L6-v2 cosines: scenario, story and response alignment); "
        "EPITOME scores `er`, `ip`, `ex` (expected level 0-2), their mean `empathy`, the argmax `*_level`; "
        "`crisis` (self-harm or suicide content, flagged for downstream filtering).",
        "## Size and composition\n\n"
        + _table(["pairs", "crisis-flagged", "PII-scrubbed"], [[n, _field(filter_metrics, "crisis_flagged"), _field(filter_metrics, "pii_scrubbed")]])
        + "\n\n"
        + _table(["SAD category", "pairs", "share"], [[c, k, f"{k / n:.1%}"] for c, k in categories]),
        pii_section(filter_metrics, params),
        "## Lengths (words)\n\n"
        + _table(
            ["text", "mean", "median", "p95", "paper mean"],
            [
                ["explanation", *lengths["explanation"].values(), PAPER["explanation_words_mean"]],
                ["response", *lengths["response"].values(), PAPER["response_words_mean"]],
            ],
        )
        + f"\n\nLexical diversity of the responses: distinct-1 {distinct_n(responses, 1):.4f}, distinct-2 {distinct_n(responses, 2):.4f}.",
        "## Empathy (EPITOME scorer)\n\n"
        "Mean expected level per communication mechanism (0 none, 1 weak, 2 strong) over the corpus:\n\n"
        + _table(["ER emotional reactions", "IP interpretations", "EX explorations", "empathy (mean)"], [list(empathy.values())])
        + f"\n\nAll scored pairs before the rule filters (`{empathy_metrics.path}`):\n\n"
        + _table(["metric", "value"], _flatten(_field(empathy_metrics)))
        + f"\n\nScorer quality on EPITOME pairs of {_field(scorer_metrics, 'heldout_posts')} seeker posts withheld "
        f"from its training (`{scorer_metrics.path}`):\n\n"
        + _table(["mechanism", "accuracy", "macro-F1", "majority-class macro-F1"], [[m.upper(), *scorer_rows[m]] for m in MECHANISMS[:3]]),
        "## How it was made\n\n"
        f"SAD stressors ({params.scenarios.n_per_category} per category, seed {params.seed}) -> brainstormed stories "
        "-> exact and ExactSubstr (suffix-array) dedup -> first-person explanations -> empathetic responses "
        "-> embedding alignment and near-duplicate removal "
        f"-> EPITOME scoring -> rule filters. Generation model: `{model_name}` (`{_model_param(params)}`).\n\n"
        + _table(
            ["step", "temperature", "top_p", "max_tokens", "repeat_penalty"],
            [[stage, s.temperature, s.top_p, s.max_tokens, s.repeat_penalty] for stage, s in sampling.items()],
        )
        + "\n\nRecords after each step:\n\n"
        + _table(["step", "records"], funnel)
        + "\n\nFilter thresholds:\n\n"
        + _table(["param", "value"], [*_flatten(params.align.model_dump(), "align"), *_flatten(params.filter.model_dump(), "filter")])
        + ("\n\nRejected by the filter stage: " + ", ".join(f"{reason} {count}" for reason, count in rejected.items()) + "." if rejected else ""),
        "## Version\n\n"
        f"- Generation model weights: `{provenance.model_weights}`.\n"
        f"- `params.yaml` sha256: `{provenance.params_sha256}`.\n\n"
        "Released versions are git tags `corpus-vX.Y` of the pipeline repo, made by `make release`; each tag's "
        "message names these two digests (`git tag -n20 -l 'corpus-v*'`), and "
        "`dvc get <repo> data/corpus/synthempathy.parquet --rev corpus-vX.Y` fetches that version. The tag itself is "
        "not written here, so that a rebuild gives this card byte for byte.",
        "## Licences\n\n"
        "- **SAD** (scenario seeds; the `scenario` field quotes it): MIT licence, copyright the SAD authors "
        "(Mauriello et al., CHI EA 2021).\n"
        "- **EPITOME** Reddit annotations (Sharma et al., EMNLP 2020): used only to train the empathy scorer "
        "behind `er`/`ip`/`ex`; no EPITOME text is in this corpus. Released by the University of Washington "
        "Behavioral Data Science group under an attribution licence: cite the paper below.\n"
        f"- Generated text: subject to the licence of the generation model (`{model_name}`).\n"
        "- This card and the pipeline code: MIT.",
        "## Citation\n\n```bibtex\n" + "\n\n".join([PAPER_BIBTEX, SAD_BIBTEX, EPITOME_BIBTEX]) + "\n```",
        "## Known limitations\n\n"
        "- Every explanation and response is machine-generated: fluent but unverified, sometimes generic, "
        "and it inherits the generation model's biases; a 135M-parameter default model writes much weaker text "
        "than a 7B-class model.\n"
        f"- Not clinical advice, and no professional reviewed the responses. {CRISIS_NOTE[params.filter.crisis_policy]}\n"
        "- The empathy scores come from an automatic scorer trained on Reddit EPITOME annotations: "
        "noisy, and a proxy for what a person would perceive.\n"
        "- Situations come from SAD's crowd-sourced everyday stressors (9 categories, short SMS-like "
        "descriptions), English only; other cultures and severe situations are under-represented.\n"
        '- PII is found by validated patterns (see "Personal data"), which can miss some, and person names '
        'are not scrubbed: SAD stressors and generated stories can name people ("my friend Sarah").',
    ]
    return "\n\n".join(sections) + "\n"
