"""JSONL/JSON reading and atomic writing.

Every output, file or directory, is written to a temporary path beside the target and renamed
into place, so a crash or kill never leaves a half-written output that DVC could cache. These
two context managers are the project's only atomic writers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonlines

from synthempathy.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp directory beside ``path`` that takes its place on success. An existing
    directory is moved aside first and deleted only once the new one is in place, so a crash at
    any moment leaves the old output or the new one (or the old one beside it), never a mix."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; outputs get the usual permissions
    try:
        yield tmp
        if target.exists():
            old = tmp.with_suffix(".old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records as UTF-8 JSONL (one object per line), atomically; return the count."""
    n = 0
    with atomic_path(path) as tmp:
        with jsonlines.open(tmp, mode="w", dumps=_dumps) as writer:
            for record in records:
                writer.write(record)
                n += 1
    return n


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write one JSON document (metrics, manifests), pretty-printed with sorted keys."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Read a JSONL file; a missing file, bad line or missing field is a one-line InputError."""
    return list(iter_jsonl(path, required))


def iter_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """``read_jsonl`` one record at a time, for a pass over a large file that keeps few records."""
    path = Path(path)
    required = tuple(required)
    if not path.is_file():
        raise InputError(f"{path}: file not found; run the stage that produces it (dvc repro)")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}:{lineno}: not a UTF-8 JSON object ({exc}); regenerate the file with dvc repro") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            missing = [k for k in required if k not in record]
            if missing:
                raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}; regenerate the file with dvc repro")
            yield record


def _dumps(obj: Any) -> str:
    # Stable bytes for DVC hashing: no ASCII escaping, no whitespace variation.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
