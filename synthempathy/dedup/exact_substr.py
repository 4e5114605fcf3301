"""ExactSubstr (Lee et al. 2021, "Deduplicating Training Data Makes Language Models Better").

A suffix array over the concatenated, normalised texts finds every substring of at least
``dup_length_threshold`` bytes shared by two different texts; the later text of each such
pair is a duplicate. Suffixes sharing a prefix of length >= T sit in one contiguous run of
the suffix array whose adjacent LCPs are all >= T, so one linear pass over the LCP array
finds every pair without comparing texts pairwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydivsufsort import divsufsort, kasai

from synthempathy.dedup.exact_hash import normalise

SEPARATOR = b"\x00"  # never inside normalised text; matches are also capped at text ends


@dataclass(frozen=True)
class ExactSubstrConfig:
    dup_length_threshold: int  # bytes of normalised UTF-8 text; Lee et al. use 50 tokens


def find_substr_duplicates(texts: Sequence[str], config: ExactSubstrConfig) -> list[int | None]:
    """For each text, the earliest earlier text sharing >= threshold bytes with it, else None."""
    n_texts = len(texts)
    if n_texts < 2:
        return [None] * n_texts
    encoded = [normalise(t).replace("\x00", " ").encode("utf-8") for t in texts]
    lengths = np.fromiter((len(b) + 1 for b in encoded), dtype=np.int64, count=n_texts)
    data = np.frombuffer(bytearray(SEPARATOR.join(encoded) + SEPARATOR), dtype=np.uint8)  # writable: pydivsufsort needs it
    ends = np.cumsum(lengths) - 1  # position of each text's separator
    doc_of = np.repeat(np.arange(n_texts, dtype=np.int32), lengths)
    room = (ends[doc_of] - np.arange(len(data))).astype(np.int32)  # bytes left in that text

    sa = divsufsort(data)
    lcp = kasai(data, sa)[:-1]  # lcp[k] = LCP(suffix sa[k], suffix sa[k+1])
    room_sa = room[sa]
    lcp = np.minimum(lcp, np.minimum(room_sa[:-1], room_sa[1:]))
    del room_sa, room

    threshold = config.dup_length_threshold
    joined = lcp >= threshold
    # Runs of joined neighbours: group[k] numbers the run that suffix array slot k belongs to.
    group = np.concatenate(([0], np.cumsum(~joined)))
    run_starts = np.flatnonzero(np.concatenate(([True], ~joined)))
    docs = doc_of[sa]
    del sa, lcp
    source = np.minimum.reduceat(docs, run_starts)[group]  # earliest text in each run
    is_dup = source < docs
    earliest = np.full(n_texts, n_texts, dtype=np.int64)
    np.minimum.at(earliest, docs[is_dup], source[is_dup])
    return [int(e) if e < n_texts else None for e in earliest]
