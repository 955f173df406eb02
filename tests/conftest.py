"""Shared fixtures: a small synthetic dataset prepared once per test session."""

from __future__ import annotations

import os

import pytest

from slm_helpers.data import prepare_dataset
from slm_helpers.tokenizer import RANKS_FILE_ENV, TokenizerUnavailableError, get_tokenizer


def tokenizer_available() -> bool:
    try:
        get_tokenizer()
        return True
    except TokenizerUnavailableError:
        return False


requires_tokenizer = pytest.mark.skipif(
    not tokenizer_available(), reason=f"no internet and no {RANKS_FILE_ENV}: the GPT-2 tokenizer is unavailable"
)


# README's test command runs the suite in two worker processes (pytest-xdist, ``-n 2``). Each
# gets its share of the cores: two threads where there are four cores or more, else one, for its
# tests, the commands they start and the notebooks' kernels (more threads than cores make every
# process wait on the others). Tests that compare two runs give both the same threads.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = 2 if (os.cpu_count() or 1) >= 2 * WORKERS else 1
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)


def command_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command a test starts: this process's, with the tests' threads (two
    runs a test compares must use the same), and ``extra``."""
    return {**os.environ, "OMP_NUM_THREADS": str(THREADS), **(extra or {})}


@pytest.fixture(autouse=True, scope="session")
def pinned_threads():
    """Tests that compare numbers run with the same number of threads (the order of a parallel
    sum can change the last bits of a loss)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n`` (and xdist's default ``--dist load``, or ``loadscope``): the notebooks, in
    order, as one unit of work on one worker (they share the data and runs folders, and a later
    one may reuse what an earlier one made), and each test module whole on one worker (its
    fixtures made once); the units with the most tests, the notebooks' first, start first.
    Another ``--dist`` is left to xdist."""
    if config.getvalue("dist") not in ("load", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksInOrder(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "notebooks" if path.endswith(".ipynb") else path

    return NotebooksInOrder(config, log)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """300 train / 40 validation synthetic stories, tokenized on one worker."""
    out = tmp_path_factory.mktemp("data") / "small"
    return prepare_dataset("synthetic", out, train_stories=300, validation_stories=40, seed=7, num_workers=1,
                           progress=False)


@pytest.fixture(scope="session")
def small_compact_dataset(tmp_path_factory):
    """The same stories with their compact vocabulary: a ``ci`` training step is about 15x
    faster than with GPT-2's 50,257 ids, for the tests that run whole trainings as a user
    would (interrupted, resumed, refused) and need no GPT-2 id."""
    out = tmp_path_factory.mktemp("data") / "small-compact"
    return prepare_dataset("synthetic", out, train_stories=300, validation_stories=40, seed=7, vocab="compact",
                           num_workers=1, progress=False)


@pytest.fixture
def no_ranks_file(monkeypatch):
    """Run a test as on a machine where SLM_GPT2_TIKTOKEN is unset."""
    monkeypatch.delenv(RANKS_FILE_ENV, raising=False)
    get_tokenizer.cache_clear()
    yield
    get_tokenizer.cache_clear()


def has_internet(host: str = "openaipublic.blob.core.windows.net") -> bool:
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False

