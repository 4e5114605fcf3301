"""Which requests a batched backend decodes together, and the cache keys that follow from it.

At batch size > 1 a completion depends on its batch-mates: llama.cpp's kernels round
differently for different batch shapes, and continuous batching decides who shares each
step. So the request list is cut into shards, each decoded in isolation (one backend
``generate`` call), and each completion is cached under a digest of its whole shard:

* cut points come from the request ids alone (content-defined, as in rsync chunking), so they
  are the same whatever is cached, and a resumed run decodes exactly the shards it decoded
  before, whole, even the members that were already cached;
* inserting or removing a request moves the cuts of its own shard and at most the next few, so
  only those shards are decoded again; any other list change (new prompts) changes the digests
  it touches and regenerates those shards rather than mixing completions decoded in different
  company;
* a change of segment label (the story index, generation.growth_order) always cuts, so requests
  appended to one segment (more scenarios) touch only its last shard, and a new segment (more
  stories) touches none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ShardPlan:
    min_size: int  # fewer would leave batch slots empty while the last sequences finish
    spread: int  # past min_size, a request ends its shard with probability 1/spread
    max_size: int  # bounds what a resume may decode again

    @classmethod
    def for_batch(cls, batch_size: int, shard_batches: int) -> ShardPlan:
        """Shards of about ``shard_batches`` batches (``generation.shard_batches``), between half
        and twice that. Larger shards waste less in their tails, where slots idle while the last
        sequences finish; smaller ones bound what a resume decodes again (the open shard, whole)."""
        half = max(1, shard_batches // 2) * batch_size
        return cls(min_size=half, spread=half, max_size=4 * half)

    def split(self, ids: Sequence[str], segments: Sequence[Hashable] | None = None) -> list[range]:
        """Consecutive shards covering ``ids``, cut where an id's hash says so, and wherever the
        segment label changes (so growing one segment never moves the next one's cuts)."""
        shards, start = [], 0
        for i, request_id in enumerate(ids):
            size = i + 1 - start
            seam = segments is not None and i + 1 < len(ids) and segments[i + 1] != segments[i]
            if seam or size >= self.max_size or (size >= self.min_size and _id_hash(request_id) % self.spread == 0):
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
