"""What the three command-line tools share: one line for every error, never a traceback.

``python -m slm_helpers.data``, ``.train`` and ``.generate`` each build an
:class:`ArgumentParser` and run their ``main`` through :func:`run`, which turns the project's
own exceptions, and the operating system's (a full disk, a folder you cannot write), into one
line ``error: <what is wrong and what to do>`` with exit status 1. Bad arguments exit with 2,
as argparse does; Ctrl-C exits with 130, as shells expect.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from slm_helpers.checkpoint import CheckpointError, describe_os_error
from slm_helpers.data import DataError
from slm_helpers.tokenizer import TokenizerUnavailableError

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
EXPECTED_ERRORS = (ValueError, DataError, CheckpointError, TokenizerUnavailableError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its complaint on one line that starts with ``error:``."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (`{self.prog} --help` lists the options)\n")


def _number(kind: type, text: str, check: Callable[[float], bool], wanted: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
    if not check(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "a whole number >= 1")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "a whole number >= 0")


def non_negative_float(text: str) -> float:
    return _number(float, text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def probability(text: str) -> float:
    return _number(float, text, lambda v: 0 < v <= 1, "a number in (0, 1]")


def say_error(message: str) -> None:
    """Print ``error: message`` as one line on stderr."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None,
        on_interrupt: str = "interrupted") -> int:
    """Run a CLI's ``main`` and turn what goes wrong into one line and an exit status."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"\n{on_interrupt}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except EXPECTED_ERRORS as error:
        say_error(str(error))
    except OSError as error:
        say_error(describe_os_error(error))
    return EXIT_ERROR
