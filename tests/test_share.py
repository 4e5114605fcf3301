"""Sharing a corpus version through DVC remotes (.dvc/config's default: a directory beside the
repo, no credentials; and S3, against moto's server): push from a reproduced repo, clone, pull, and
the clone's outputs are the ones dvc.lock names. Also releases (tags that `dvc get`/`dvc import`
fetch), the LLM cache archive that lets a clone extend a version, and bad remotes."""

import hashlib
import json
import shutil
import socket
import subprocess
import tarfile
import time

import boto3
import botocore.exceptions
import pytest
import yaml
from helpers import VENV_BIN, run

from synthempathy.llm.cache import LLMCache


def lock_files(repo):
    """(path, md5) of every output dvc.lock names that is a file (directories carry a .dir md5)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for stage in lock["stages"].values() for o in stage.get("outs", []) if not o["md5"].endswith(".dir")}


def test_push_clone_pull_restores_every_output(reproduced, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(reproduced, source, symlinks=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "corpus"], cwd=source, check=True)
    pushed = run(["dvc", "push"], source)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert (tmp_path / "synthempathy-storage").is_dir()  # ../../ from .dvc/: beside the repo, outside it

    subprocess.run(["git", "clone", "-q", str(source), str(tmp_path / "clone")], check=True)
    clone = tmp_path / "clone"
    pulled = run(["dvc", "pull"], clone)
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    files = lock_files(clone)
    assert "data/corpus/synthempathy.parquet" in files and "data/rejected.jsonl" in files
    for path, md5 in files.items():
        assert hashlib.md5((clone / path).read_bytes()).hexdigest() == md5, path
    assert (clone / "models" / "empathy_scorer").is_dir()
    status = run(["dvc", "status"], clone)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    assert not (clone / ".cache").exists()  # the LLM cache is not a DVC output: never pushed


def test_push_without_a_default_remote_names_the_fix(reproduced, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(reproduced, source, symlinks=True)
    run(["dvc", "remote", "default", "--unset"], source)
    pushed = run(["dvc", "push"], source)
    assert pushed.returncode != 0 and "no remote specified" in pushed.stderr and "dvc remote default <remote name>" in pushed.stderr, pushed.stderr


def committed_copy(reproduced, dest):
    """A copy of the reproduced repo (its LLM cache included) with dvc.lock and the outputs committed."""
    shutil.copytree(reproduced, dest, symlinks=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "corpus"], cwd=dest, check=True)
    return dest


def test_imported_cache_makes_only_the_new_calls(reproduced, tmp_path):
    """A teammate pulls a version and its exported LLM cache, raises brainstorm.n_stories by one:
    only the new story per scenario is generated, every old call is a cache hit."""
    source = committed_copy(reproduced, tmp_path / "source")
    assert run(["dvc", "push"], source).returncode == 0
    archive = tmp_path / "llm-cache.tar.gz"
    exported = run(["python", "-m", "synthempathy.cache_archive", "export", str(archive)], source)
    assert exported.returncode == 0 and archive.is_file(), exported.stderr[-2000:]

    subprocess.run(["git", "clone", "-q", str(source), str(tmp_path / "clone")], check=True)
    clone = tmp_path / "clone"
    assert run(["dvc", "pull"], clone).returncode == 0
    assert not (clone / ".cache").exists()
    imported = run(["python", "-m", "synthempathy.cache_archive", "import", str(archive)], clone)
    assert imported.returncode == 0, imported.stderr[-2000:]
    n_rows = json.loads(tarfile.open(archive).extractfile("manifest.json").read())["rows"]
    assert f"imported {n_rows} of {n_rows} completions" in imported.stdout, imported.stdout

    old = yaml.safe_load((clone / "params.yaml").read_text())["brainstorm"]["n_stories"]
    repro = run(["dvc", "exp", "run", "-S", f"brainstorm.n_stories={old + 1}", "brainstorm"], clone)  # README's command, one stage
    assert repro.returncode == 0, repro.stderr[-3000:]
    n_scenarios = len((clone / "data" / "scenarios.jsonl").read_text().splitlines())
    log = json.loads((clone / "logs" / "brainstorm.json").read_text())
    assert (log["requests"], log["generated"], log["cached"], log["recomputed"]) == (n_scenarios * (old + 1), n_scenarios, n_scenarios * old, 0), log


def test_cache_archive_of_another_model_is_refused(reproduced, tmp_path):
    source = committed_copy(reproduced, tmp_path / "source")
    archive = tmp_path / "llm-cache.tar.gz"
    assert run(["python", "-m", "synthempathy.cache_archive", "export", str(archive)], source).returncode == 0
    params = yaml.safe_load((source / "params.yaml").read_text())
    params["generation"]["batch_size"] = 4  # another cache key: none of the archive's rows could be a hit
    (source / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(source / ".cache" / "llm")
    imported = run(["python", "-m", "synthempathy.cache_archive", "import", str(archive)], source)
    assert imported.returncode == 2, imported.stdout
    assert imported.stderr.count("\n") == 1 and f"error: {archive}: made for another model (batch_size 8 in the archive vs 4 here)" in imported.stderr
    assert LLMCache(source / ".cache" / "llm").count() == 0  # nothing half-written


def test_release_tags_a_pushed_version_that_other_projects_get_and_import(reproduced, tmp_path, model_path):
    source = committed_copy(reproduced, tmp_path / "source")
    for key, value in (("user.name", "t"), ("user.email", "t@t")):
        subprocess.run(["git", "config", key, value], cwd=source, check=True)
    release = ["python", "-m", "synthempathy.release"]

    (source / "README.md").write_text((source / "README.md").read_text() + "\nedited\n")
    refused = run([*release, "0.1"], source)
    assert (
        refused.returncode == 2
        and refused.stderr == "error: uncommitted changes (README.md); commit or stash them first: the tag must name what built the corpus\n"
    )
    subprocess.run(["git", "checkout", "--", "README.md"], cwd=source, check=True)

    released = run([*release, "0.1"], source)
    assert released.returncode == 0, released.stderr[-2000:]
    message = subprocess.run(["git", "tag", "-l", "-n20", "corpus-v0.1"], cwd=source, capture_output=True, text=True, check=True).stdout
    parquet_md5 = lock_files(source)["data/corpus/synthempathy.parquet"]
    assert f"params.yaml sha256: {hashlib.sha256((source / 'params.yaml').read_bytes()).hexdigest()}" in message
    assert f"model weights: sha256:{hashlib.sha256(model_path.read_bytes()).hexdigest()}" in message
    assert f"data/corpus/synthempathy.parquet: {parquet_md5}" in message
    assert run([*release, "0.1"], source).stderr == "error: tag corpus-v0.1 exists; pick a new VERSION (git tag -l 'corpus-v*' lists the released ones)\n"

    shutil.rmtree(source / ".dvc" / "cache")  # what other projects fetch must come from the remote
    got = run(["dvc", "get", str(source), "data/corpus/synthempathy.parquet", "--rev", "corpus-v0.1", "-o", "x.parquet"], tmp_path)
    assert got.returncode == 0, got.stderr[-2000:]
    assert hashlib.md5((tmp_path / "x.parquet").read_bytes()).hexdigest() == parquet_md5

    consumer = tmp_path / "consumer"
    (consumer / "data").mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert run(cmd, consumer).returncode == 0
    imported = run(["dvc", "import", str(source), "data/corpus/synthempathy.parquet", "--rev", "corpus-v0.1", "-o", "data/synthempathy.parquet"], consumer)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert hashlib.md5((consumer / "data/synthempathy.parquet").read_bytes()).hexdigest() == parquet_md5
    tag_commit = subprocess.run(["git", "rev-parse", "corpus-v0.1^{commit}"], cwd=source, capture_output=True, text=True, check=True).stdout.strip()
    assert yaml.safe_load((consumer / "data/synthempathy.parquet.dvc").read_text())["deps"][0]["repo"]["rev_lock"] == tag_commit

    params = yaml.safe_load((source / "params.yaml").read_text())
    params["brainstorm"]["max_tokens"] += 1
    (source / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "commit", "-qam", "params changed, not reproduced"], cwd=source, check=True)
    stale = run([*release, "0.2"], source)
    assert stale.returncode == 2 and stale.stderr.startswith("error: dvc status is not clean (") and "run dvc repro and commit dvc.lock first" in stale.stderr


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server (moto_server, requirements-moto.txt) as a real process on 127.0.0.1, with a
    bucket; the AWS credentials DVC and boto3 read from the environment."""
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.create_bucket(Bucket="synthempathy")
                break
            except botocore.exceptions.EndpointConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "moto_server did not start"
                time.sleep(0.2)
        yield endpoint, s3
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_s3_remote_round_trip(reproduced, tmp_path, s3_server):
    """The README's switch to an S3 remote, against moto's S3 server: push, fresh clone, pull."""
    endpoint, s3 = s3_server
    source = committed_copy(reproduced, tmp_path / "source")
    for cmd in (["dvc", "remote", "add", "-d", "s3remote", "s3://synthempathy/corpus"], ["dvc", "remote", "modify", "s3remote", "endpointurl", endpoint]):
        assert run(cmd, source).returncode == 0
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "S3 remote"], cwd=source, check=True)
    start = time.monotonic()
    pushed = run(["dvc", "push"], source)
    print(f"dvc push to moto S3: {time.monotonic() - start:.1f} s")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="synthempathy", Prefix="corpus/")["Contents"]}
    md5 = lock_files(source)["data/corpus/synthempathy.parquet"]
    assert f"corpus/files/md5/{md5[:2]}/{md5[2:]}" in keys and not (tmp_path / "synthempathy-storage").exists()  # in the bucket only

    subprocess.run(["git", "clone", "-q", str(source), str(tmp_path / "clone")], check=True)
    clone = tmp_path / "clone"
    start = time.monotonic()
    pulled = run(["dvc", "pull"], clone)
    print(f"dvc pull from moto S3: {time.monotonic() - start:.1f} s")
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    for path, md5 in lock_files(clone).items():
        assert hashlib.md5((clone / path).read_bytes()).hexdigest() == md5, path
    assert "up to date" in run(["dvc", "status"], clone).stdout


def test_unreachable_or_missing_remote_is_one_line_naming_it(reproduced, tmp_path, monkeypatch):
    source = committed_copy(reproduced, tmp_path / "source")
    port = free_port()  # nothing listens there
    for cmd in (
        ["dvc", "remote", "add", "-d", "s3remote", "s3://synthempathy/corpus"],
        ["dvc", "remote", "modify", "s3remote", "endpointurl", f"http://127.0.0.1:{port}"],
    ):
        assert run(cmd, source).returncode == 0
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))  # no ~/.aws either
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    pushed = run(["python", "-m", "synthempathy.remote", "push"], source)
    assert pushed.returncode == 1 and pushed.stderr.count("\n") == 1, pushed.stderr
    assert pushed.stderr.startswith(
        f"error: dvc push: remote 's3remote' (s3://synthempathy/corpus at http://127.0.0.1:{port}): credentials missing or refused ("
    )

    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    pushed = run(["python", "-m", "synthempathy.remote", "push"], source)
    assert pushed.returncode == 1 and pushed.stderr.count("\n") == 1, pushed.stderr
    assert pushed.stderr.startswith(f"error: dvc push: remote 's3remote' (s3://synthempathy/corpus at http://127.0.0.1:{port}) is unreachable (")
    assert "pick another remote: dvc remote default NAME" in pushed.stderr

    run(["dvc", "remote", "default", "local"], source)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "remotes"], cwd=source, check=True)
    subprocess.run(["git", "clone", "-q", str(source), str(tmp_path / "clone")], check=True)
    storage = tmp_path / "synthempathy-storage"  # never pushed to: missing
    pulled = run(["python", "-m", "synthempathy.remote", "pull"], tmp_path / "clone")
    assert pulled.returncode == 1 and pulled.stderr == (
        f"error: dvc pull: remote 'local' ({storage}) is missing: no directory {storage}; put the storage there or point the remote at it: "
        "dvc remote modify local url PATH\n"
    )
    storage.mkdir()  # there, but empty: every file is missing
    pulled = run(["python", "-m", "synthempathy.remote", "pull"], tmp_path / "clone")
    assert pulled.returncode == 1 and pulled.stderr.count("\n") == 1, pulled.stderr
    assert f"file(s) missing from remote 'local' ({storage}); push them from the repo that made them (make push)" in pulled.stderr
    assert not (tmp_path / "clone" / "data" / "corpus" / "synthempathy.parquet").exists()  # nothing half-pulled

    run(["dvc", "remote", "default", "--unset"], source)
    none = run(["python", "-m", "synthempathy.remote", "push"], source)
    assert (
        none.returncode == 1
        and none.stderr == "error: no default DVC remote (.dvc/config core.remote); add one: dvc remote add -d NAME URL (README: Sharing a corpus version)\n"
    )
