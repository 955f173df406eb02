"""Folders that hold a dataset or a run: files written whole, and one process at a time.

* :func:`write_atomically` writes under a temporary name and renames into place, so a crash
  or a full disk never leaves a half-written file where a good one was;
* :func:`hold` keeps a folder for one process while it writes there (a dataset being
  prepared, a run training): a second process is refused, with the first one named, instead
  of mixing its files with the first one's;
* :func:`check_folder` refuses a path that cannot be a folder before any work is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from slm_helpers.errors import SlmError


def check_folder(folder: Path, purpose: str, error: type[SlmError] = SlmError) -> None:
    """A clear error when ``folder`` cannot be a folder for ``purpose``: it is a file, or lies
    below one."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise error(f"{folder} is a file, not a folder: choose a folder for {purpose}")
    for parent in folder.parents:
        if parent.exists():  # the first folder that exists: the ones above it do too
            if not parent.is_dir():
                raise error(f"{folder} cannot be created: {parent} is a file, not a folder")
            break


class _Recorded:
    """A file that remembers the first ``OSError`` of a write: torch's writer reports a full disk
    as its own ``RuntimeError``, which says neither what happened nor to which file."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name):
        return getattr(self.file, name)


def write_atomically(path: str | os.PathLike, write: Callable) -> None:
    """``write(file)`` into ``path.tmp``, then rename it to ``path``. On failure the temporary
    file is removed and ``path`` keeps its previous content; an ``OSError`` (a full disk, a
    folder one cannot write) names ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    recorded = None
    try:
        with open(tmp, "wb") as f:
            recorded = _Recorded(f)
            write(recorded)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        cause = error if isinstance(error, OSError) else getattr(recorded, "error", None)
        if cause is not None:
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise


def write_json(obj, path: str | os.PathLike) -> None:
    """``obj`` as indented JSON at ``path``, written atomically."""
    write_atomically(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


_HELD: set[Path] = set()  # folders this process holds: holding one again is a no-op


@contextlib.contextmanager
def hold(folder: Path, lock_name: str, doing: str, error: type[SlmError] = SlmError) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs (creating it if needed).

    Another process that asks for the same folder meanwhile gets ``error``: "<folder> is
    <doing> right now by process N: wait for it to finish, or choose another folder". The
    lock is the operating system's (``flock``), so a process that dies, even by kill -9,
    releases it; the lock file is removed when the block ends. A process may hold a folder
    it already holds (the command line holds a run's folder, then ``train`` does). Without
    ``fcntl`` (Windows) nothing is locked, and that is said in one line.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock_name
    if path.resolve() in _HELD:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows
        print(f"(no file locking on {sys.platform}: do not use {folder} from two processes at once)")
        yield
        return
    while True:
        lock = open(path, "a+")  # noqa: SIM115 - held open while the folder is held
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise error(f"{folder} is {doing} right now by {holder}: wait for it to finish, or choose another "
                        "folder") from None
        # The holder before us may have removed the file between our open and our lock: then we
        # hold a file nobody else sees, and must lock the one that is there now.
        try:
            same = os.fstat(lock.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        lock.close()
    _HELD.add(path.resolve())
    try:
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}")
        lock.flush()
        yield
    finally:
        _HELD.discard(path.resolve())
        path.unlink(missing_ok=True)
        lock.close()
