"""Near duplicates by embedding cosine: greedy in row order, by blocked matrix products.

Row i is a near duplicate when its cosine to an earlier KEPT row reaches the threshold, so a
chain a~b~c keeps c when b was dropped for a and c is not itself close to a. Each block of
rows is compared with every earlier row in column chunks: memory is block × chunk floats,
never n × n, and each product is one BLAS call. Decisions use cosines rounded to
``decimals`` places, so a rerun (or another BLAS) cannot flip a pair sitting on the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm


@dataclass(frozen=True)
class NearDuplicateConfig:
    threshold: float  # cosine at or above which a later row is a duplicate of an earlier one
    decimals: int = 4  # cosines are rounded to this many places before any decision
    block_size: int = 2048  # rows per product; with chunk_size it bounds the working memory
    chunk_size: int = 16384  # earlier rows per product (2048 × 16384 float32 = 128 MiB)


@dataclass(frozen=True)
class NearDuplicates:
    duplicate_of: np.ndarray  # int64 per row: the earlier kept row it duplicates, -1 if none
    similarity: np.ndarray  # float64 per row: rounded cosine to duplicate_of, NaN if none
    nearest: np.ndarray  # float64 per row: rounded max cosine to ANY earlier row, NaN for row 0


def find_near_duplicates(embeddings: np.ndarray, config: NearDuplicateConfig, eligible: np.ndarray | None = None, progress: bool = False) -> NearDuplicates:
    """Greedy near-duplicate removal over unit-norm rows, in row order.

    Rows with ``eligible`` False (dropped upstream) are neither judged nor able to absorb a
    later row, but still count for ``nearest``, which describes the whole input.
    """
    x = np.ascontiguousarray(embeddings)
    n = len(x)
    kept = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool).copy()
    judged = kept.copy()
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    nearest = np.full(n, np.nan)
    # A raw cosine below this can never round up to the threshold; the margin absorbs float noise.
    cutoff = config.threshold - 10.0**-config.decimals
    for start in tqdm(range(0, n, config.block_size), desc="near-duplicates", unit="block", disable=not progress):
        stop = min(n, start + config.block_size)
        best, rows, cols, sims = _compare_block(x, start, stop, config.chunk_size, cutoff)
        nearest[start:stop] = np.where(np.isfinite(best), np.round(best.astype(np.float64), config.decimals), np.nan)
        sims = np.round(sims.astype(np.float64), config.decimals)
        hit = sims >= config.threshold
        rows, cols, sims = rows[hit], cols[hit], sims[hit]
        # Row by row in order; within a row the most similar earlier row first, ties to the earliest.
        for k in np.lexsort((cols, -sims, rows)):
            i, j = rows[k], cols[k]
            if judged[i] and duplicate_of[i] < 0 and kept[j]:  # kept[j] is final: j < i
                duplicate_of[i], similarity[i], kept[i] = j, sims[k], False
    return NearDuplicates(duplicate_of=duplicate_of, similarity=similarity, nearest=nearest)


def _compare_block(x: np.ndarray, start: int, stop: int, chunk_size: int, cutoff: float):
    """Rows start..stop against every earlier row: per-row max cosine, and all pairs >= cutoff."""
    row_ids = np.arange(start, stop)
    best = np.full(stop - start, -np.inf, dtype=x.dtype)
    found_rows, found_cols, found_sims = [], [], []
    for cstart in range(0, stop, chunk_size):
        cstop = min(stop, cstart + chunk_size)
        sims = x[start:stop] @ x[cstart:cstop].T
        if cstop > start:  # the chunk reaches into the block: only strictly earlier rows count
            lo = max(start, cstart)
            sims[:, lo - cstart :][np.arange(lo, cstop)[None, :] >= row_ids[:, None]] = -np.inf
        row_max = sims.max(axis=1)
        np.maximum(best, row_max, out=best)
        hot = np.flatnonzero(row_max >= cutoff)  # hits are rare: scan only the rows that have one
        r, c = np.nonzero(sims[hot] >= cutoff)
        r = hot[r]
        found_rows.append(r + start)
        found_cols.append(c + cstart)
        found_sims.append(sims[r, c])
    return best, np.concatenate(found_rows), np.concatenate(found_cols), np.concatenate(found_sims)
