"""Export and import the LLM completion cache, so a teammate can extend a pulled corpus version
(more stories, more scenarios) and only the new LLM calls run.

An archive is a tar.gz of two members: ``manifest.json`` (format, the model part of the cache key
that params.yaml selected at export, row count, sha256 of the rows file) and ``completions.jsonl``
(one cache row per line, in key order). Import checks the manifest's model against params.yaml's
and the rows against the digest and count, then adds the rows not cached yet in one transaction:
a bad archive adds nothing.

    python -m synthempathy.cache_archive export llm-cache.tar.gz
    python -m synthempathy.cache_archive import llm-cache.tar.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from synthempathy.errors import InputError
from synthempathy.io import atomic_path
from synthempathy.llm.cache import COLUMNS, LLMCache, cache_dir

FORMAT = "synthempathy-llm-cache"
VERSION = 1
MANIFEST = "manifest.json"
ROWS = "completions.jsonl"
_TYPES = {"key": str, "text": str, "prompt_tokens": int, "completion_tokens": int, "finish_reason": str}


def _row_line(row: tuple) -> bytes:
    return json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _add_member(tar: tarfile.TarFile, name: str, fileobj, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0  # fixed metadata: the same cache gives the same bytes
    tar.addfile(info, fileobj)


def export_cache(cache: LLMCache, model: dict, archive: Path) -> dict:
    """Write every cached row and the manifest to ``archive`` (atomically); return the manifest."""
    with atomic_path(archive) as tmp, tempfile.TemporaryFile(dir=archive.parent) as rows:
        digest, n = hashlib.sha256(), 0
        for row in cache.rows():
            line = _row_line(row)
            digest.update(line)
            rows.write(line)
            n += 1
        size = rows.tell()
        rows.seek(0)
        manifest = {"format": FORMAT, "version": VERSION, "model": model, "rows": n, "sha256": digest.hexdigest()}
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
        with tmp.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            _add_member(tar, MANIFEST, io.BytesIO(manifest_bytes), len(manifest_bytes))  # first: import checks the model before any row
            _add_member(tar, ROWS, rows, size)
    return manifest


def _member(tar: tarfile.TarFile, name: str, archive: Path):
    try:
        info = tar.getmember(name)
    except KeyError:
        raise InputError(f"{archive}: no {name} inside: not an LLM cache archive; make one with `make cache-export`") from None
    if not info.isfile():
        raise InputError(f"{archive}: {name} is not a regular file: not an LLM cache archive; make one with `make cache-export`")
    return tar.extractfile(info)


def model_mismatch(archived: dict, current: dict) -> str | None:
    """How the archive's model differs from params.yaml's, or None when its rows can be hits."""
    if archived == current:
        return None
    keys = sorted(set(archived) | set(current))
    return ", ".join(f"{k} {archived.get(k)!r} in the archive vs {current.get(k)!r} here" for k in keys if archived.get(k) != current.get(k))


def read_manifest(tar: tarfile.TarFile, archive: Path) -> dict:
    try:
        manifest = json.loads(_member(tar, MANIFEST, archive).read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{archive}: {MANIFEST} is not JSON: the archive is damaged; export it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise InputError(f"{archive}: {MANIFEST} is not a {FORMAT} v{VERSION} manifest; export it again with `make cache-export`")
    missing = [k for k in ("model", "rows", "sha256") if k not in manifest]
    if missing:
        raise InputError(f"{archive}: {MANIFEST} lacks {', '.join(missing)}; export it again with `make cache-export`")
    return manifest


def _checked_rows(fh, manifest: dict, archive: Path) -> Iterator[tuple]:
    """The archive's rows, each checked; after the last, the digest and count against the manifest
    (raising then still rolls back the import's transaction)."""
    digest, n = hashlib.sha256(), 0
    for lineno, line in enumerate(fh, start=1):
        digest.update(line)
        try:
            record = json.loads(line.decode("utf-8"))
            row = tuple(record[c] for c in COLUMNS)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{archive}: {ROWS}:{lineno} is not a cache row: the archive is damaged or tampered with; export it again") from None
        if not all(isinstance(v, _TYPES[c]) for c, v in zip(COLUMNS, row, strict=True)):
            raise InputError(f"{archive}: {ROWS}:{lineno} has a field of the wrong type: the archive is damaged or tampered with; export it again")
        n += 1
        yield row
    if digest.hexdigest() != manifest["sha256"] or n != manifest["rows"]:
        raise InputError(
            f"{archive}: content digest or row count differs from its manifest ({n} rows, sha256 {digest.hexdigest()[:12]}… vs "
            f"{manifest['rows']}, {str(manifest['sha256'])[:12]}…): damaged or tampered with; export it again; nothing was imported"
        )


def import_cache(cache: LLMCache, model: dict, archive: Path) -> tuple[int, int]:
    """Check ``archive`` and add its rows not cached yet (one transaction). Returns (rows in the
    archive, rows added)."""
    if not archive.is_file():
        raise InputError(f"{archive}: file not found; give the path of an archive made by `make cache-export`")
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = read_manifest(tar, archive)
            mismatch = model_mismatch(manifest["model"], model)
            if mismatch:
                raise InputError(
                    f"{archive}: made for another model ({mismatch}); set params.yaml's model/generation to the archive's "
                    "model, or generate without it; nothing was imported"
                )
            added = cache.insert_new(_checked_rows(_member(tar, ROWS, archive), manifest, archive))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"{archive}: not a readable tar.gz ({exc}): not an LLM cache archive or a damaged one; export it again") from None
    return manifest["rows"], added


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m synthempathy.cache_archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["export", "import"])
    parser.add_argument("archive", type=Path, metavar="FILE", help="the .tar.gz to write (export) or read (import)")
    args = parser.parse_args(argv)
    from synthempathy.llm.runtime import cache_fingerprint  # imports llama.cpp's wrapper
    from synthempathy.params import load_params

    try:
        model = cache_fingerprint(load_params())
        if args.action == "export":
            db = cache_dir() / "completions.sqlite3"
            if not db.is_file():
                raise InputError(f"{db}: no LLM cache here; run dvc repro first, or point SYNTHEMPATHY_CACHE at the cache")
            cache = LLMCache()
            manifest = export_cache(cache, model, args.archive)
            print(f"exported {manifest['rows']} completions to {args.archive} ({args.archive.stat().st_size:,} bytes, sha256 {manifest['sha256'][:12]}…)")
        else:
            cache = LLMCache()
            rows, added = import_cache(cache, model, args.archive)
            print(f"imported {added} of {rows} completions from {args.archive} ({rows - added} already cached) into {cache_dir()}")
        cache.close()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
