"""What goes wrong, said in one line: the project's errors and its checks of simple inputs.

Every error the helpers raise on purpose is a :class:`SlmError` (a ``ValueError``), whose
message says what is wrong and what to do. The command-line tools print it as one line
``error: ...``; a notebook shows it under the cell. The checks below are the one place
where "a whole number >= 1" and "a finite number" are spelled out, for the API and the
command line alike.
"""

from __future__ import annotations

import errno
import math


class SlmError(ValueError):
    """Bad input or a bad file; the message says what is wrong and what to do."""


class DataError(SlmError):
    """Bad input for preparing or reading a dataset."""


class CheckpointError(SlmError):
    """A weights, checkpoint or history file that is missing, damaged, of another kind, or
    of another run."""


class TokenizerError(SlmError):
    """A tokenizer that cannot be loaded, or that does not speak a model's or dataset's ids."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be (the command-line tools install the handler): what
    is running stops cleanly and keeps what it made, as on Ctrl-C."""


def check_int(name: str, value, minimum: int = 1, error: type[ValueError] = SlmError, alternative: str = "") -> int:
    """``value`` if it is a whole number (an ``int``, not a ``bool``) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be a whole number (int){alternative}, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise error(f"{name} must be a whole number >= {minimum}{alternative}, not {value!r}")
    return value


def check_number(name: str, value, minimum: float = 0.0, error: type[ValueError] = SlmError, hint: str = "") -> float:
    """``value`` if it is a finite real number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise error(f"{name} must be a finite number >= {minimum:g}{hint}, not {value!r}")
    return float(value)


def describe_os_error(error: OSError) -> str:
    """One line for a failed read or write: what happened, to which file, what to do."""
    where = f" {error.filename}" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device while writing{where}: free some space, then run the same command again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where} ({error.strerror}): choose a folder you can write to"
    return f"{error.strerror or error}:{where}"


def optional_import(module: str, needed_for: str, extra: str):
    """The optional package ``module``, or an :class:`SlmError` that says how to install it:
    ``pip install -e .[extra]`` (or the package alone)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SlmError(f"{needed_for} needs the {module} package: pip install -e .[{extra}] (or: pip install "
                       f"{module})") from None
