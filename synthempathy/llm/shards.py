"""Which requests a batched backend decodes together, and the cache keys that follow from it.

At batch size > 1 a completion depends on its batch-mates: llama.cpp's kernels round
differently for different batch shapes, and continuous batching decides who shares each
step. So the request list is cut into shards, each decoded in isolation (one backend
``generate`` call), and each completion is cached under a digest of its whole shard:

* cut points come from the request ids alone (content-defined, as in rsync chunking), so they
  are the same whatever is cached, and a resumed run decodes exactly the shards it decoded
  before, whole, even the members that were already cached;
* inserting or removing a request moves the cuts of its own shard and at most the next few, so
  only those shards are decoded again; any other list change (new prompts, new n_stories)
  changes the digests it touches and regenerates those shards rather than mixing completions
  decoded in different company.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class ShardPlan:
    min_size: int  # fewer would leave batch slots empty while the last sequences finish
    spread: int  # past min_size, a request ends its shard with probability 1/spread
    max_size: int  # bounds what a resume may decode again

    @classmethod
    def for_batch(cls, batch_size: int) -> ShardPlan:
        """About 16 batches per shard: idle slots in the shard's tail cost a few percent."""
        return cls(min_size=8 * batch_size, spread=8 * batch_size, max_size=32 * batch_size)

    def split(self, ids: Sequence[str]) -> list[range]:
        """Consecutive shards covering ``ids``, cut where an id's hash says so."""
        shards, start = [], 0
        for i, request_id in enumerate(ids):
            size = i + 1 - start
            if size >= self.max_size or (size >= self.min_size and _id_hash(request_id) % self.spread == 0):
                shards.append(range(start, i + 1))
                start = i + 1
        if start < len(ids):
            shards.append(range(start, len(ids)))
        return shards


def _id_hash(request_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest(), "big")


def shard_digest(member_keys: Sequence[str]) -> str:
    """Names a shard by its members' cache keys, in decode order."""
    return hashlib.sha256("\n".join(member_keys).encode("ascii")).hexdigest()
