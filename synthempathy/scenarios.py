"""Seed scenarios from SAD v1 (Mauriello et al., CHI EA 2021): real stressor sentences."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from synthempathy.errors import InputError
from synthempathy.records import sorted_by_id
from synthempathy.seeding import derive_seed

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("sID", "sentence", "is_stressor", "top_label", "avg_severity")


def load_sad(path: str | Path) -> pd.DataFrame:
    """Read the SAD CSV with the columns we need; bad files fail with a one-line fix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: seed file not found; copy SAD_v1.csv there (see data/seeds/README.md)")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x}); re-export the file as UTF-8") from None
    if not raw.strip():
        raise InputError(f"{path}: file is empty; copy SAD_v1.csv there (see data/seeds/README.md)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; use SAD v1 with its header row")
    if frame.empty:
        raise InputError(f"{path}: no data rows; copy SAD_v1.csv there (see data/seeds/README.md)")
    return frame


def stressor_scenarios(frame: pd.DataFrame, source: str | Path = "SAD") -> list[dict]:
    """Rows with is_stressor == 1 as scenario records; a malformed row is an error naming it, and
    a file without a single stressor is an error too (the pipeline would "succeed" on nothing)."""
    records = []
    for row_no, row in enumerate(frame.itertuples(index=False), start=2):  # row 1 is the header
        flag = row.is_stressor.strip()
        if flag not in ("0", "1"):
            raise InputError(f"{source}:{row_no}: is_stressor {row.is_stressor!r} is not 0 or 1; fix the row (1 = a stressor to use)")
        if flag == "0":
            continue
        text = " ".join(row.sentence.split())
        if not text:
            log.warning("%s:%d: skipped stressor sID=%s with empty sentence", source, row_no, row.sID)
            continue
        try:
            sid = int(row.sID)
            severity = float(row.avg_severity)
        except ValueError:
            raise InputError(f"{source}:{row_no}: sID {row.sID!r} / avg_severity {row.avg_severity!r} not numeric; fix the row") from None
        records.append({"id": f"sad-{sid}", "text": text, "category": row.top_label, "severity": severity})
    if not records:
        raise InputError(f"{source}: no row with is_stressor == 1 and a sentence; mark the stressors to use with is_stressor 1")
    return records


def pick_key(seed: int, scenario_id: str) -> tuple[int, str]:
    """Rank of a scenario within its category: a per-id hash, so raising n keeps the earlier picks."""
    return derive_seed(seed, "scenarios", scenario_id), scenario_id


def sample_per_category(records: list[dict], n_per_category: int | str, seed: int) -> list[dict]:
    """Take the n scenarios of each category that rank first by ``pick_key``."""
    by_category: dict[str, list[dict]] = {}
    for record in records:
        by_category.setdefault(record["category"], []).append(record)
    chosen = []
    for category in sorted(by_category):
        ranked = sorted(by_category[category], key=lambda r: pick_key(seed, r["id"]))
        chosen.extend(ranked if n_per_category == "all" else ranked[:n_per_category])
    return sorted_by_id(chosen)
