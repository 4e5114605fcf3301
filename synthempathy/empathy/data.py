"""EPITOME annotations (Sharma, Miner, Atkins, Althoff, EMNLP 2020): reading, checking, sampling.

The three files (ER emotional reactions, IP interpretations, EX explorations) rate the same
(seeker post, response) pairs 0 (none), 1 (weak) or 2 (strong). ``pairs_table`` joins them into
one row per pair with a level column per mechanism, the multi-task model's training table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from synthempathy.errors import InputError
from synthempathy.paths import stage_path
from synthempathy.seeding import derive_seed

MECHANISMS = ("er", "ip", "ex")
REQUIRED_COLUMNS = ("sp_id", "rp_id", "seeker_post", "response_post", "level")
LEVELS = (0, 1, 2)
_SOURCE = "copy it from behavioral-data/Empathy-Mental-Health dataset/ (see data/external/epitome/README.md)"


def normalise_text(text: str) -> str:
    """Collapse whitespace: the three EPITOME files differ only in spacing of the same posts."""
    return " ".join(text.split())


def load_epitome_file(path: str | Path) -> pd.DataFrame:
    """One EPITOME CSV as rows (line, sp_id, rp_id, seeker, response, level).

    Anything that would train the scorer on a wrong label (a missing file or column, a level
    outside 0-2, an empty id, seeker post or response) is an InputError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; {_SOURCE}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-export the file as UTF-8") from None
    if not text.strip():
        raise InputError(f"{path}: file is empty; {_SOURCE}")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} in the header; use the original EPITOME CSV with its header row")
    rows, line = [], reader.line_num + 1
    for row in reader:  # line numbers by hand: quoted fields may span several lines
        start, line = line, reader.line_num + 1
        level = (row["level"] or "").strip()
        if level not in ("0", "1", "2"):
            raise InputError(f"{path}:{start}: level {row['level']!r} is not 0, 1 or 2; fix or drop the row")
        fields = {
            "sp_id": (row["sp_id"] or "").strip(),
            "seeker_post": normalise_text(row["seeker_post"] or ""),
            "response_post": normalise_text(row["response_post"] or ""),
        }
        empty = [name for name, value in fields.items() if not value]
        if empty:
            raise InputError(f"{path}:{start}: empty {', '.join(empty)}; fix or drop the row")
        rows.append(
            {
                "line": start,
                "sp_id": fields["sp_id"],
                "rp_id": (row["rp_id"] or "").strip(),
                "seeker": fields["seeker_post"],
                "response": fields["response_post"],
                "level": int(level),
            }
        )
    if not rows:
        raise InputError(f"{path}: header but no data rows; {_SOURCE}")
    return pd.DataFrame(rows)


def load_epitome(files: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """The three EPITOME annotation files, given and keyed by mechanism (er, ip, ex)."""
    return {m: load_epitome_file(files[m]) for m in MECHANISMS}


def pairs_table(data: Mapping[str, pd.DataFrame], files: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per annotated pair: sp_id, rp_id, seeker, response and a level column per
    mechanism, in file order. The files rate the same pairs row for row (some (sp_id, rp_id)
    pairs occur twice in the originals, so rows are matched by position, and checked)."""
    first, *rest = MECHANISMS
    table = data[first][["sp_id", "rp_id", "seeker", "response"]].reset_index(drop=True)
    table[first] = data[first]["level"].to_numpy()
    for m in rest:
        frame = data[m].reset_index(drop=True)
        same = (len(frame) == len(table)) and (frame["sp_id"] == table["sp_id"]).all() and (frame["rp_id"] == table["rp_id"]).all()
        if not same:
            row = next(
                (i for i in range(min(len(frame), len(table))) if (frame["sp_id"][i], frame["rp_id"][i]) != (table["sp_id"][i], table["rp_id"][i])),
                min(len(frame), len(table)),
            )
            where = f":{frame['line'][row]}" if row < len(frame) else ""
            raise InputError(f"{files[m]}{where}: rates other pairs than {files[first]} (data row {row + 1}); use the original files")
        table[m] = frame["level"].to_numpy()
    return table


# The train_scorer stage's options (--emotional-reactions ...) naming the ER, IP and EX files.
STAGE_OPTIONS = ("emotional_reactions", "interpretations", "explorations")


def stage_files(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, str]:
    """The annotation files in the ``train_scorer`` stage's ``cmd`` in dvc.yaml, by mechanism:
    for the tools outside ``dvc repro`` (``make scorer-cv``, the scorer benchmark)."""
    return {m: stage_path("train_scorer", option.replace("_", "-"), dvc_yaml) for m, option in zip(MECHANISMS, STAGE_OPTIONS, strict=True)}


def pick_posts(sp_ids: Iterable[str], n: int, seed: int, purpose: str) -> list[str]:
    """n distinct seeker posts ranked by a hash of (seed, purpose, sp_id): raising n keeps the
    earlier picks, and each purpose draws independently of the others."""
    ranked = sorted(set(sp_ids), key=lambda sp: (derive_seed(seed, purpose, sp), sp))
    return sorted(ranked[:n])


def sample_posts(table: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """Only n seeker posts (all their pairs), for quick runs; None keeps all."""
    if n is None:
        return table
    keep = set(pick_posts(table["sp_id"], n, seed, "train_scorer/sample"))
    return table[table["sp_id"].isin(keep)].reset_index(drop=True)


def split_heldout(table: pd.DataFrame, n: int, seed: int) -> tuple[list[str], list[dict]]:
    """The held-out sp_ids, and their posts as situation records ``{id: epitome-<sp_id>, text}``."""
    posts = table.drop_duplicates("sp_id").set_index("sp_id")["seeker"]
    sp_ids = pick_posts(posts.index, n, seed, "train_scorer")
    return sp_ids, [{"id": f"epitome-{sp}", "text": posts[sp]} for sp in sp_ids]
