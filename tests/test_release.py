"""The pure parts of make release and make push/pull; the real runs (git, DVC, moto's S3) are in
test_share.py."""

from pathlib import Path

import pytest

from synthempathy.errors import InputError
from synthempathy.release import tag_message, tag_name
from synthempathy.remote import Remote, failure

S3 = Remote("s3remote", "s3://bucket/corpus", "http://127.0.0.1:9")
LOCAL = Remote("local", "/srv/synthempathy-storage", None)


def test_tag_name_wants_major_minor():
    assert tag_name("0.1") == "corpus-v0.1" and tag_name("12.30") == "corpus-v12.30"
    for bad in ("1", "v0.1", "0.1.2", "0.1 ", ""):
        with pytest.raises(InputError, match="not MAJOR.MINOR; e.g. make release VERSION=0.1"):
            tag_name(bad)


def test_tag_message_names_digests_and_files_in_order():
    message = tag_message("corpus-v0.1", "p" * 64, "sha256:" + "m" * 64, {"data/corpus/sft.jsonl": "b", "data/corpus/README.md": "a"})
    assert message.splitlines() == [
        "SYNTHEMPATHY corpus corpus-v0.1",
        "",
        "params.yaml sha256: " + "p" * 64,
        "model weights: sha256:" + "m" * 64,
        "",
        "files (md5, as in dvc.lock):",
        "  data/corpus/README.md: a",
        "  data/corpus/sft.jsonl: b",
    ]


def test_failure_names_the_remote_and_the_fix():
    unreachable = 'ERROR: unexpected error - Could not connect to the endpoint URL: "http://127.0.0.1:9/bucket"\n'
    assert failure("push", S3, unreachable) == (
        "dvc push: remote 's3remote' (s3://bucket/corpus at http://127.0.0.1:9) is unreachable (unexpected error - Could not connect "
        'to the endpoint URL: "http://127.0.0.1:9/bucket"); check the url/endpoint and the network, or pick another remote: dvc remote default NAME'
    )
    assert "credentials missing or refused (failed - Unable to locate credentials)" in failure("pull", S3, "ERROR: failed - Unable to locate credentials\n")
    missing = "WARNING: Some of the cache files do not exist neither locally nor on remote. Missing cache files:\nmd5: aa\nmd5: bb\nERROR: failed to pull data from the cloud - Checkout failed\n"
    assert failure("pull", LOCAL, missing).startswith("dvc pull: 2 file(s) missing from remote 'local' (/srv/synthempathy-storage); push them")
    assert (
        failure("push", LOCAL, "ERROR: disk full\n")
        == "dvc push with remote 'local' (/srv/synthempathy-storage) failed: disk full; rerun dvc push -v for the details"
    )


def test_local_dir_of_a_remote():
    assert LOCAL.local_dir() == Path("/srv/synthempathy-storage")
    assert Remote("r", "../../storage", None).local_dir() == Path(".dvc/../../storage")
    assert S3.local_dir() is None and Remote("g", "gs://b/p", None).local_dir() is None
