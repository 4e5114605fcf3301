"""Sharing a corpus version through the repo's default DVC remote (.dvc/config: a directory beside
the repo, no credentials): push from a reproduced repo, clone it, pull, and the clone's outputs are
the ones dvc.lock names."""

import hashlib
import shutil
import subprocess

import yaml
from helpers import run


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
