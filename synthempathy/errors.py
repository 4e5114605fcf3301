"""One-line, actionable errors for bad input, and the stage entry point that reports them."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from types import SimpleNamespace


class InputError(Exception):
    """Bad input the user can fix: the message names the file or param, the row and the fix."""


class StageFailure(Exception):
    """The stage could not finish for a reason outside its input (e.g. generation workers kept
    dying): the message names what failed and what to check."""


def stage_main(*paths: str) -> Callable[[Callable[[SimpleNamespace], None]], Callable[[], None]]:
    """Decorate a stage's ``main(paths)``. The stage's files come from dvc.yaml's ``cmd`` as
    ``--<name> PATH`` options, one per name in ``paths`` (a name ending in ``+`` takes one or
    more paths), so dvc.yaml alone states where every file lives. The stage logs at INFO; an
    InputError becomes one line on stderr and exit code 2, a StageFailure one line and exit 1."""

    def decorate(func: Callable[[SimpleNamespace], None]) -> Callable[[], None]:
        @functools.wraps(func)
        def wrapper(argv: list[str] | None = None) -> None:
            parser = argparse.ArgumentParser(prog=f"python -m {func.__module__}", description=func.__module__)
            for name in paths:
                many = name.endswith("+")
                parser.add_argument(f"--{name.rstrip('+').replace('_', '-')}", required=True, nargs="+" if many else None, metavar="PATH")
            args = parser.parse_args(argv)
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            try:
                func(args)
            except (InputError, StageFailure) as exc:
                print(f"error: {exc}", file=sys.stderr)
                sys.exit(2 if isinstance(exc, InputError) else 1)

        return wrapper

    return decorate
