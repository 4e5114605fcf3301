"""What a filtering stage hands back, datatrove-style: the records it kept, a rejection (with a
declared reason) for each record it dropped, and the counters that become its metrics file.

Every stage that drops records builds one ``StageResult``, so they all count the same way: every
declared reason appears in the metrics, zeros included (``dvc metrics diff`` lines up), and a
reason nobody declared is a programming error, raised where the record is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.records import rejection


@dataclass
class StageResult:
    stage: str
    reasons: Sequence[str]  # every reason this stage may drop a record for, in the order checked
    records_in: int
    kept: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    extra_metrics: dict = field(default_factory=dict)  # stage-specific deterministic counts

    def keep(self, record: dict) -> None:
        self.kept.append(record)

    def reject(self, record_id: str, reason: str, detail: str = "", **extra) -> None:
        """``extra``: more fields of the rejection (records.rejection), e.g. a failed attempt and its text."""
        if reason not in self.reasons:
            raise ValueError(f"stage {self.stage}: rejection reason {reason!r} is not declared in {tuple(self.reasons)}")
        self.rejected.append(rejection(record_id, self.stage, reason, detail, **extra))

    def metrics(self) -> dict:
        counts = Counter(r["reason"] for r in self.rejected)
        return {
            "records_in": self.records_in,
            "records_out": len(self.kept),
            "rejected": {reason: counts[reason] for reason in self.reasons},
            **self.extra_metrics,
        }

    def write(self, kept_path: str, rejected_path: str, metrics_path: str) -> None:
        """The stage's three outputs, each written atomically."""
        write_jsonl_atomic(kept_path, self.kept)
        write_jsonl_atomic(rejected_path, self.rejected)
        write_json_atomic(metrics_path, self.metrics())
