"""On-disk LLM cache, outside DVC outputs (DVC deletes outputs before a stage runs).

SQLite commits each completion as it finishes, so a killed run loses at most the calls in
flight and a rerun redoes no finished call.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from synthempathy.llm.types import Completion, Request
from synthempathy.paths import cache_root

# One row per completion; cache_archive.py exports and imports rows with these fields.
COLUMNS = ("key", "text", "prompt_tokens", "completion_tokens", "finish_reason")


def cache_dir() -> Path:
    return cache_root() / "llm"


def cache_key(model_fingerprint: dict, request: Request) -> str:
    """Hash of the model file, chat format, runtime that affects numerics, messages, sampling and seed."""
    payload = json.dumps({"model": model_fingerprint, "request": request.sampling()}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LLMCache:
    def __init__(self, directory: str | Path | None = None) -> None:
        directory = Path(directory) if directory is not None else cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / "completions.sqlite3", timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A commit reaches the WAL file (in the OS cache) without an fsync: it survives a killed
        # process, only a power cut can lose the last ones (a rerun regenerates them). An fsync per
        # completion would cap the driver at ~100 completions/s, below a fleet of inference servers.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, text TEXT, prompt_tokens INT, completion_tokens INT, finish_reason TEXT)"
        )
        self._db.commit()

    def get(self, key: str, request_id: str) -> Completion | None:
        row = self._db.execute("SELECT text, prompt_tokens, completion_tokens, finish_reason FROM completions WHERE key = ?", (key,)).fetchone()
        return Completion(request_id, *row) if row else None

    def put(self, key: str, completion: Completion) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?)",
            (key, completion.text, completion.prompt_tokens, completion.completion_tokens, completion.finish_reason),
        )
        self._db.commit()

    def rows(self) -> Iterator[tuple]:
        """Every row (``COLUMNS``), in key order."""
        yield from self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM completions ORDER BY key")

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def insert_new(self, rows: Iterable[tuple]) -> int:
        """Add the rows whose key is not cached yet, in one transaction: if ``rows`` raises midway
        (a corrupt archive), nothing is added. Returns how many were added."""
        before = self._db.total_changes
        with self._db:  # commits on success, rolls back on any exception
            self._db.executemany(f"INSERT OR IGNORE INTO completions VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        return self._db.total_changes - before

    def close(self) -> None:
        self._db.close()
