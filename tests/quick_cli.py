"""Run ``python -m <module> <args>`` in a new process, without paying for a new interpreter.

Starting Python and importing torch takes about two seconds; the bad-input cases run a command
a hundred times. Here each command still runs in a process of its own, through its real
``__main__`` (``runpy``, as ``python -m`` does), with its own working folder, environment,
stdout, stderr and exit status; only the process is forked from a server that imported torch
and the package once (multiprocessing's forkserver, which has run no computation, so forking it
is safe). What can differ from a fresh interpreter is what a module reads from the environment
when it is imported: commands that need another environment go through ``subprocess`` instead.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

# torch._dynamo too: torch's optimizers import it on their first call (1.5-2.5 s), in every command that trains.
PRELOAD = ["torch", "torch._dynamo", "numpy", "slm_helpers.cli", "slm_helpers.data", "slm_helpers.train",
           "slm_helpers.generate", "quick_cli"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _run_module(module: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """In the child: become ``python -m module args`` with stdout and stderr going to files."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS", "").isdigit():  # read by torch when it starts, which it did in the server
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """What ``subprocess.run([sys.executable, "-m", *command], env=env, cwd=cwd, capture_output=True,
    text=True, stdin=subprocess.DEVNULL)`` returns, from a process forked off the server."""
    module, *args = command
    with tempfile.TemporaryDirectory() as captured:
        out, err = Path(captured) / "stdout", Path(captured) / "stderr"
        process = _context.Process(target=_run_module, args=(module, args, str(cwd), env, str(out), str(err)))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(command, timeout)
        return subprocess.CompletedProcess(command, process.exitcode, out.read_text(), err.read_text())
