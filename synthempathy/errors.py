"""One-line, actionable errors for bad input, and the stage entry point that reports them."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable


class InputError(Exception):
    """Bad input the user can fix: the message names the file or param, the row and the fix."""


class StageFailure(Exception):
    """The stage could not finish for a reason outside its input (e.g. generation workers kept
    dying): the message names what failed and what to check."""


def stage_main(func: Callable[[], None]) -> Callable[[], None]:
    """Run a stage: log at INFO, turn an InputError into one line on stderr and exit code 2, a
    StageFailure into one line and exit code 1."""

    @functools.wraps(func)
    def wrapper() -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            func()
        except (InputError, StageFailure) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2 if isinstance(exc, InputError) else 1)

    return wrapper
