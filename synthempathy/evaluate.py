"""Base vs fine-tuned model on held-out situations, scored with the EPITOME empathy scorer.

Both models answer every situation under identical decoding (one loaded model, the LoRA
adapter switched off for the base); the paired bootstrap puts a confidence interval on the
mean per-situation difference, the paper's "+21% average empathy" comparison.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from synthempathy.errors import InputError
from synthempathy.export import chat_messages
from synthempathy.finetune import prompt_text
from synthempathy.io import read_jsonl
from synthempathy.params import EvaluateParams
from synthempathy.seeding import derive_seed

MECHANISMS = ("er", "ip", "ex", "empathy")  # empathy: the mean of the three
CONFIDENCE = 0.95

log = logging.getLogger(__name__)


def read_situations(path: str | Path, text_column: str, limit: int | None = None) -> list[dict]:
    """``{id, text}`` per row of a .jsonl or .csv file, in file order; the first ``limit`` rows.

    ``id`` is the row's own id field when it has one, else ``<file stem>-<row number>``.
    Whitespace runs collapse to one space (as in the EPITOME posts the scorer was trained on);
    rows with an empty text are skipped with a warning.
    """
    path = Path(path)
    if path.suffix not in (".jsonl", ".csv"):
        raise InputError(f"evaluate.situations={path}: expected a .jsonl or .csv file")
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
    else:
        if not path.is_file():
            raise InputError(f"{path}: file not found; run the stage that produces it (dvc repro) or fix evaluate.situations")
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    if rows and text_column not in rows[0]:
        raise InputError(f"{path}: no column {text_column!r} (has {', '.join(rows[0])}); set evaluate.text_column")
    situations = [
        {"id": str(row.get("id") or f"{path.stem}-{i}"), "text": " ".join(str(row.get(text_column) or "").split())} for i, row in enumerate(rows, start=1)
    ]
    kept = [s for s in situations if s["text"]]
    if len(kept) < len(situations):
        log.warning("%s: skipped %d row(s) with an empty %s", path, len(situations) - len(kept), text_column)
    if not kept:
        raise InputError(f"{path}: no situations with a non-empty {text_column!r}; fix evaluate.situations")
    return kept[:limit]


def decoding_kwargs(params: EvaluateParams, pad_id: int) -> dict:
    """``generate`` options: greedy at temperature 0, else nucleus sampling."""
    kwargs = {"max_new_tokens": params.max_new_tokens, "repetition_penalty": params.repetition_penalty, "pad_token_id": pad_id}
    if params.temperature == 0:
        return {**kwargs, "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {**kwargs, "do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": None}


def generate_responses(model, tokenizer, situations: Sequence[str], params: EvaluateParams, seed: int, desc: str) -> list[str]:
    """One reply per situation, in input order; batches of similar length, left-padded."""
    tokenizer.padding_side = "left"  # every row's prompt then ends at the last column, where generation starts
    order = sorted(range(len(situations)), key=lambda i: (len(situations[i]), i))  # less padding per batch
    kwargs = decoding_kwargs(params, tokenizer.pad_token_id)
    device = next(model.parameters()).device
    replies: list[str] = [""] * len(situations)
    for start in tqdm(range(0, len(order), params.batch_size), desc=desc, unit="batch"):
        batch = order[start : start + params.batch_size]
        texts = [prompt_text(tokenizer, chat_messages(situations[i])) for i in batch]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        torch.manual_seed(derive_seed(seed, "evaluate", str(start)))  # same draws for base and tuned
        with torch.no_grad():
            output = model.generate(**encoded, **kwargs)
        for i, row in zip(batch, output[:, encoded["input_ids"].shape[1] :], strict=True):
            replies[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return replies


def side_by_side(
    situations: Sequence[dict], base: Sequence[str], tuned: Sequence[str], base_scores: Sequence[Mapping], tuned_scores: Sequence[Mapping]
) -> list[dict]:
    """One record per situation with both replies and their scores (floats to 4 places)."""

    def rounded(scores: Mapping) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}

    return [
        {"id": s["id"], "situation": s["text"], "base_response": b, "tuned_response": t, "base_scores": rounded(bs), "tuned_scores": rounded(ts)}
        for s, b, t, bs, ts in zip(situations, base, tuned, base_scores, tuned_scores, strict=True)
    ]


def paired_bootstrap_ci(base: Sequence[float], tuned: Sequence[float], n_samples: int, seed: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(tuned - base), resampling situations (pairs) with replacement."""
    diff = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    if diff.ndim != 1 or diff.size == 0:
        raise ValueError("need two equally long, non-empty score lists")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_samples, diff.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def compare_scores(base: Sequence[Mapping], tuned: Sequence[Mapping], n_samples: int, seed: int) -> dict:
    """Per mechanism: means, relative change, spread and the paired-bootstrap CI of the difference."""
    if len(base) != len(tuned) or not base:
        raise ValueError("need one base and one tuned score per situation")
    result: dict = {"n": len(base), "confidence": CONFIDENCE, "bootstrap_samples": n_samples}
    for m in MECHANISMS:
        b = np.array([s[m] for s in base], dtype=float)
        t = np.array([s[m] for s in tuned], dtype=float)
        low, high = paired_bootstrap_ci(b, t, n_samples, seed)
        result[m] = {
            "base_mean": round(float(b.mean()), 4),
            "tuned_mean": round(float(t.mean()), 4),
            "difference": round(float(t.mean() - b.mean()), 4),
            "relative_change": round(float((t.mean() - b.mean()) / b.mean()), 4) if b.mean() else None,
            "base_std": round(float(b.std(ddof=1)), 4) if b.size > 1 else 0.0,
            "tuned_std": round(float(t.std(ddof=1)), 4) if t.size > 1 else 0.0,
            "difference_ci": [round(low, 4), round(high, 4)],
        }
        stds = result[m]["base_std"], result[m]["tuned_std"]
        result[m]["std_relative_change"] = round((stds[1] - stds[0]) / stds[0], 4) if stds[0] else None  # paper: -4%
    return result


def reply_stats(replies: Sequence[str]) -> dict:
    """Mean words per reply and the share of replies asking a question: a gain in empathy
    should not be just longer or more question-marked text."""
    if not replies:
        raise ValueError("no replies")
    return {
        "mean_words": round(sum(len(r.split()) for r in replies) / len(replies), 1),
        "question_share": round(sum("?" in r for r in replies) / len(replies), 4),
    }


def summary_line(metrics: Mapping) -> str:
    """The headline of a comparison: average empathy, its change, CI and spread, and ER/IP/EX."""
    e = metrics["empathy"]
    change = f"{100 * e['relative_change']:+.1f}%" if e["relative_change"] is not None else "n/a"
    spread = f"{100 * e['std_relative_change']:+.1f}%" if e["std_relative_change"] is not None else "n/a"
    parts = ", ".join(f"{m.upper()} {metrics[m]['base_mean']:.3f} -> {metrics[m]['tuned_mean']:.3f}" for m in MECHANISMS[:-1])
    return (
        f"empathy {e['base_mean']:.3f} -> {e['tuned_mean']:.3f} ({change}, {100 * CONFIDENCE:.0f}% CI of the difference "
        f"[{e['difference_ci'][0]:+.3f}, {e['difference_ci'][1]:+.3f}]); std {e['base_std']:.3f} -> {e['tuned_std']:.3f} ({spread}); "
        f"{parts}; {metrics['n']} situations"
    )
