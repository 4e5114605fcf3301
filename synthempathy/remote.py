"""``make push`` / ``make pull``: ``dvc push`` / ``dvc pull`` to the default remote, with a failure
told in one line that names the remote, its url and the fix (DVC's own message is many lines and
does not name the remote).

    python -m synthempathy.remote push|pull
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from synthempathy.errors import InputError

CONFIG_DIR = Path(".dvc")  # a relative local remote url is relative to it


class Remote(NamedTuple):
    name: str
    url: str
    endpoint: str | None  # S3-compatible servers: remote.<name>.endpointurl

    def describe(self) -> str:
        return f"remote '{self.name}' ({self.url}" + (f" at {self.endpoint}" if self.endpoint else "") + ")"

    def local_dir(self) -> Path | None:
        """The directory of a local remote (a url without a scheme), else None."""
        if re.match(r"^[a-z][a-z0-9+.-]*://", self.url):
            return None
        path = Path(self.url).expanduser()
        return path if path.is_absolute() else CONFIG_DIR / path


def _dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], capture_output=True, text=True)


def default_remote() -> Remote:
    found = _dvc("remote", "default")  # exit 1 and "No default remote set" when none
    name = found.stdout.strip() if found.returncode == 0 else ""
    if not name:
        raise InputError("no default DVC remote (.dvc/config core.remote); add one: dvc remote add -d NAME URL (README: Sharing a corpus version)")
    url = _dvc("config", f"remote.{name}.url").stdout.strip()
    if not url:
        raise InputError(f"DVC remote '{name}' has no url; set it: dvc remote modify {name} url URL, or pick another: dvc remote default NAME")
    endpoint = _dvc("config", f"remote.{name}.endpointurl").stdout.strip() or None
    return Remote(name, url, endpoint)


def failure(action: str, remote: Remote, stderr: str) -> str:
    """The one line that says why ``dvc <action>`` failed and what to do."""
    errors = [line.removeprefix("ERROR: ").strip() for line in stderr.splitlines() if line.startswith("ERROR")]
    detail = errors[-1] if errors else (stderr.strip().splitlines() or ["no message"])[-1]
    where = remote.describe()
    if re.search(r"could not connect|failed to connect|connection refused|name or service not known|timed out", stderr, re.I):
        return f"dvc {action}: {where} is unreachable ({detail}); check the url/endpoint and the network, or pick another remote: dvc remote default NAME"
    if re.search(r"credentials|access denied|forbidden|invalidaccesskeyid|signaturedoesnotmatch|403", stderr, re.I):
        return (
            f"dvc {action}: {where}: credentials missing or refused ({detail}); set them (e.g. AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY, or dvc remote modify --local {remote.name} ...)"
        )
    missing = re.findall(r"^md5: ", stderr, re.M)
    if action == "pull" and missing:
        return f"dvc pull: {len(missing)} file(s) missing from {where}; push them from the repo that made them (make push), or regenerate: dvc repro"
    return f"dvc {action} with {where} failed: {detail}; rerun dvc {action} -v for the details"


def sync(action: str) -> int:
    remote = default_remote()
    local = remote.local_dir()
    if action == "pull" and local is not None and not local.is_dir():
        raise InputError(
            f"dvc pull: {remote.describe()} is missing: no directory {local.resolve()}; put the storage there or point the remote "
            f"at it: dvc remote modify {remote.name} url PATH"
        )
    result = _dvc(action)
    if result.returncode != 0:
        raise InputError(failure(action, remote, result.stderr))
    sys.stdout.write(result.stdout)  # DVC's summary ("21 files pushed")
    sys.stderr.write(result.stderr)  # and its warnings, if any
    return result.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m synthempathy.remote", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["push", "pull"])
    args = parser.parse_args(argv)
    try:
        sync(args.action)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
