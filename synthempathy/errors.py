"""One-line, actionable errors for bad input, and the stage entry point that reports them."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable


class InputError(Exception):
    """Bad input the user can fix: the message names the file or param, the row and the fix."""


def stage_main(func: Callable[[], None]) -> Callable[[], None]:
    """Run a stage: log at INFO, turn an InputError into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper() -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            func()
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return wrapper
