"""LLM cache export/import (synthempathy/cache_archive.py) on real SQLite caches and real tar.gz
files: round trip, and every bad archive refused with nothing added. The end-to-end check (export
from a reproduced repo, import into a fresh clone, only the new calls run) is in test_share.py."""

import gzip
import io
import json
import tarfile

import pytest

from synthempathy.cache_archive import ROWS, export_cache, import_cache
from synthempathy.errors import InputError
from synthempathy.llm.cache import LLMCache
from synthempathy.llm.types import Completion

MODEL = {"sha256": "a" * 64, "chat_format": None, "gpu": False, "batch_size": 8}


def filled_cache(directory, n=5):
    cache = LLMCache(directory)
    for i in range(n):
        cache.put(f"key{i}", Completion(f"r{i}", f"story {i} – ünïcode", 10 + i, 20 + i, "stop"))
    return cache


def rows(cache):
    return list(cache.rows())


def rewrite_archive(src, dst, edit):
    """Copy archive ``src`` to ``dst`` with ``edit(name, bytes) -> bytes`` applied to each member."""
    with tarfile.open(src, "r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in members:
            data = edit(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_round_trip_adds_only_new_rows_and_is_deterministic(tmp_path):
    source = filled_cache(tmp_path / "a")
    manifest = export_cache(source, MODEL, tmp_path / "x.tar.gz")
    assert manifest["rows"] == 5 and manifest["model"] == MODEL
    export_cache(source, MODEL, tmp_path / "y.tar.gz")
    assert (tmp_path / "x.tar.gz").read_bytes() == (tmp_path / "y.tar.gz").read_bytes()  # same cache, same bytes

    target = filled_cache(tmp_path / "b", n=2)  # key0, key1 already there
    target.put("key0", Completion("r0", "kept local text", 1, 1, "stop"))
    assert import_cache(target, MODEL, tmp_path / "x.tar.gz") == (5, 3)
    got = {row[0]: row for row in rows(target)}
    assert set(got) == {f"key{i}" for i in range(5)}
    assert got["key0"][1] == "kept local text"  # INSERT OR IGNORE: a local row is never overwritten
    assert got["key4"] == ("key4", "story 4 – ünïcode", 14, 24, "stop")
    assert import_cache(target, MODEL, tmp_path / "x.tar.gz") == (5, 0)


def test_archive_of_another_model_is_refused(tmp_path):
    export_cache(filled_cache(tmp_path / "a"), MODEL, tmp_path / "x.tar.gz")
    target = LLMCache(tmp_path / "b")
    other = {**MODEL, "sha256": "b" * 64}
    with pytest.raises(InputError, match=r"x\.tar\.gz: made for another model \(sha256 'aaaa.*set params.yaml's model"):
        import_cache(target, other, tmp_path / "x.tar.gz")
    with pytest.raises(InputError, match=r"batch_size 8 in the archive vs 4 here"):
        import_cache(target, {**MODEL, "batch_size": 4}, tmp_path / "x.tar.gz")
    assert rows(target) == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda name, data: data.replace(b"story 3", b"story X") if name == ROWS else data,  # same length, other bytes
        lambda name, data: data + data.splitlines(keepends=True)[0] if name == ROWS else data,  # a row added
        lambda name, data: data[: len(data) // 2] if name == ROWS else data,  # cut in the middle of a row
    ],
    ids=["edited", "row-added", "truncated"],
)
def test_tampered_archive_adds_nothing(tmp_path, edit):
    export_cache(filled_cache(tmp_path / "a"), MODEL, tmp_path / "x.tar.gz")
    rewrite_archive(tmp_path / "x.tar.gz", tmp_path / "bad.tar.gz", edit)
    target = filled_cache(tmp_path / "b", n=1)
    with pytest.raises(InputError, match=r"bad\.tar\.gz: .*(damaged or tampered with|digest or row count differs)"):
        import_cache(target, MODEL, tmp_path / "bad.tar.gz")
    assert [row[0] for row in rows(target)] == ["key0"]  # the rows read before the check were rolled back


def test_not_an_archive(tmp_path):
    target = LLMCache(tmp_path / "b")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt: not a readable tar\.gz .*not an LLM cache archive"):
        import_cache(target, MODEL, tmp_path / "notes.txt")
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    with pytest.raises(InputError, match=r"other\.tar\.gz: no manifest\.json inside: not an LLM cache archive"):
        import_cache(target, MODEL, tmp_path / "other.tar.gz")
    export_cache(filled_cache(tmp_path / "a"), MODEL, tmp_path / "x.tar.gz")
    (tmp_path / "cut.tar.gz").write_bytes((tmp_path / "x.tar.gz").read_bytes()[:-40])
    with pytest.raises(InputError, match=r"cut\.tar\.gz: .*export it again"):
        import_cache(target, MODEL, tmp_path / "cut.tar.gz")
    with pytest.raises(InputError, match=r"missing\.tar\.gz: file not found"):
        import_cache(target, MODEL, tmp_path / "missing.tar.gz")
    rewrite_archive(tmp_path / "x.tar.gz", tmp_path / "v2.tar.gz", lambda name, data: json.dumps({"format": "x"}).encode() if name != ROWS else data)
    with pytest.raises(InputError, match=r"v2\.tar\.gz: manifest\.json is not a synthempathy-llm-cache v1 manifest"):
        import_cache(target, MODEL, tmp_path / "v2.tar.gz")
    assert rows(target) == []
    assert gzip.decompress((tmp_path / "x.tar.gz").read_bytes())  # the good one is a plain tar.gz
