"""Release a corpus version: ``make release VERSION=0.1``.

Refuses (one line, non-zero exit) unless the git tree is clean, ``dvc status`` is clean (every
output matches dvc.lock and nothing would rerun) and the tag is new. Then it pushes every DVC
output to the default remote and makes the annotated tag ``corpus-vX.Y`` whose message names
the params digest, the model's weights and the corpus files' md5s (from dvc.lock). Push goes
first, so a tag never names outputs the remote lacks.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from synthempathy.errors import InputError
from synthempathy.paths import locked_md5s

TAG_PREFIX = "corpus-v"
CARD = Path("data/corpus/README.md")  # written by the export stage (dvc.yaml)


def tag_name(version: str) -> str:
    if not re.fullmatch(r"\d+\.\d+", version):
        raise InputError(f"VERSION={version!r}: not MAJOR.MINOR; e.g. make release VERSION=0.1")
    return TAG_PREFIX + version


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def _last_line(text: str) -> str:
    """The line of a tool's stderr that says what went wrong: DVC's ERROR line, else the last."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error", "fatal"))]
    return (errors or lines or ["no output"])[0 if errors else -1]


def check_git_clean() -> None:
    status = _run(["git", "status", "--porcelain"])
    if status.returncode != 0:
        raise InputError(f"git status failed ({_last_line(status.stderr)}); run make release in the pipeline's git repo")
    changed = [line[3:] for line in status.stdout.splitlines()]
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise InputError(f"uncommitted changes ({shown}); commit or stash them first: the tag must name what built the corpus")


def check_tag_is_new(tag: str) -> None:
    if _run(["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"]).returncode == 0:
        raise InputError(f"tag {tag} exists; pick a new VERSION (git tag -l '{TAG_PREFIX}*' lists the released ones)")


def check_dvc_clean() -> None:
    status = _run(["dvc", "status", "--json"])
    if status.returncode != 0:
        raise InputError(f"dvc status failed ({_last_line(status.stderr)}); fix that first")
    changed = json.loads(status.stdout or "{}")
    if changed:
        raise InputError(f"dvc status is not clean ({', '.join(sorted(changed))} changed); run dvc repro and commit dvc.lock first")


def check_card(params_digest: str, weights: str) -> None:
    """The card names this params.yaml and this model (it is an export output, so dvc status
    being clean already implies it; a card from before this check existed would not)."""
    card = CARD.read_text(encoding="utf-8") if CARD.is_file() else ""
    if params_digest not in card or weights not in card:
        raise InputError(f"{CARD}: does not name params.yaml sha256 {params_digest[:12]}… and model {weights}; run dvc repro -f export and commit")


def tag_message(tag: str, params_digest: str, weights: str, md5s: dict[str, str]) -> str:
    lines = [f"SYNTHEMPATHY corpus {tag}", "", f"params.yaml sha256: {params_digest}", f"model weights: {weights}", "", "files (md5, as in dvc.lock):"]
    return "\n".join([*lines, *(f"  {path}: {md5}" for path, md5 in sorted(md5s.items()))]) + "\n"


def release(version: str) -> str:
    from synthempathy.llm.runtime import model_weights  # imports llama.cpp's wrapper
    from synthempathy.params import load_params, params_sha256

    tag = tag_name(version)
    check_git_clean()
    check_tag_is_new(tag)
    check_dvc_clean()
    params_digest, weights = params_sha256(), model_weights(load_params())
    check_card(params_digest, weights)
    pushed = subprocess.run(["dvc", "push"], stderr=subprocess.PIPE, text=True)  # its progress shows
    if pushed.returncode != 0:
        raise InputError(f"dvc push failed ({_last_line(pushed.stderr)}); no tag made; fix the remote (dvc remote list) and rerun")
    message = tag_message(tag, params_digest, weights, locked_md5s("export"))  # the released files
    tagged = subprocess.run(["git", "tag", "-a", tag, "-F", "-"], input=message, capture_output=True, text=True)
    if tagged.returncode != 0:
        raise InputError(f"git tag {tag} failed ({_last_line(tagged.stderr)}); the outputs are pushed, rerun once git works")
    return tag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m synthempathy.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", metavar="VERSION", help="MAJOR.MINOR, e.g. 0.1: the tag is corpus-vVERSION")
    args = parser.parse_args(argv)
    try:
        tag = release(args.version)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"released {tag}: outputs pushed, annotated tag made; share it with git push origin {tag}")


if __name__ == "__main__":
    main()
