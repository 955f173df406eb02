"""The files a training run writes, read back safely.

A run's folder (``runs/<preset>`` by default) holds

* ``best_model_params.pt``: the weights of the best evaluation so far, with the model's
  configuration (what :func:`slm_helpers.generate.load_model` reads);
* ``checkpoint.pt``: everything needed to continue exactly where the run stopped: weights,
  optimizer, schedule, scaler, step, random-number states, history and both configurations;
* ``history.json``: one record per evaluation (step, tokens, lr, train_loss, val_loss).

Every file is written under a temporary name and renamed into place, so a crash or a full
disk never leaves a half-written file where a good one was. Everything loads with
``torch.load(..., weights_only=True)``, which refuses to run pickled code.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import torch

BEST_WEIGHTS_FILE = "best_model_params.pt"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
RUN_FILES = (CHECKPOINT_FILE, BEST_WEIGHTS_FILE, HISTORY_FILE)
CHECKPOINT_VERSION = 2
CHECKPOINT_KEYS = ("step", "model", "optimizer", "scheduler", "scaler", "rng", "history", "best_val_loss",
                   "tokens_seen", "model_config", "train_config")
MAKE_IT = "notebook 04 or `python -m slm_helpers.train` writes it"


class CheckpointError(ValueError):
    """A weights, checkpoint or history file that is missing, damaged or of another kind."""


def describe_os_error(error: OSError) -> str:
    """One line for a failed read or write: what happened, to which file, what to do."""
    where = f" {error.filename}" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device while writing{where}: free some space, then run the same command again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where} ({error.strerror}): choose a folder you can write to"
    return f"{error.strerror or error}:{where}"


def _write_atomically(path: Path, write) -> None:
    """``write(file)`` into ``path.tmp``, then rename it to ``path``. On failure the temporary
    file is removed and ``path`` keeps its previous content; the error names ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``. Given an open file,
    torch writes through Python, so a full disk is an ``OSError`` (ENOSPC), not an opaque
    error from torch's C++ writer."""
    _write_atomically(Path(path), lambda f: torch.save(obj, f))


def atomic_write_json(obj, path: str | os.PathLike) -> None:
    _write_atomically(Path(path), lambda f: f.write(json.dumps(obj, indent=1).encode()))


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with torch's errors turned
    into one :class:`CheckpointError` line. Loads on the CPU: ``load_state_dict`` moves the
    weights to the model's device, and random-number states must stay CPU tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}: {MAKE_IT}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated zip, random bytes, a pickle with code...
        if "Unsupported global" in str(error):  # a pickled object; never suggest turning weights_only off
            raise CheckpointError(
                f"{path} holds objects that torch.load(weights_only=True) refuses to load: it was not written by "
                f"slm_helpers; {MAKE_IT}"
            ) from None
        raise CheckpointError(
            f"{path} cannot be read as a {what} ({type(error).__name__}): the file is damaged, cut short, or not one "
            f"that slm_helpers wrote; {MAKE_IT} again"
        ) from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A full training checkpoint (``checkpoint.pt``), on the CPU, checked for what resuming
    needs. Best weights or a foreign file give a :class:`CheckpointError` that says which."""
    saved = load_file(path, "checkpoint")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} holds a {type(saved).__name__}, not a training checkpoint of slm_helpers.train")
    missing = [key for key in CHECKPOINT_KEYS if key not in saved]
    if missing and {"model", "model_config", "val_loss"} <= saved.keys():
        raise CheckpointError(
            f"{path} holds best weights (the model only, from step {saved.get('step', '?')}), not a training checkpoint: "
            f"resuming needs {CHECKPOINT_FILE} as train writes it, with the optimizer, schedule and step"
        )
    if missing:
        raise CheckpointError(
            f"{path} is not a training checkpoint of slm_helpers.train (it lacks {', '.join(missing)}): "
            f"resume from the {CHECKPOINT_FILE} of a run, or start a new run"
        )
    return saved


def load_history(out_dir: str | os.PathLike) -> list[dict]:
    """The evaluation records of a run: step, tokens, lr, train_loss, val_loss."""
    path = Path(out_dir) / HISTORY_FILE
    if not path.is_file():
        raise CheckpointError(f"no {HISTORY_FILE} in {out_dir}: train first ({MAKE_IT})")
    try:
        history = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}): {MAKE_IT} again") from None
    if not isinstance(history, list) or not all(isinstance(r, dict) and "val_loss" in r for r in history):
        raise CheckpointError(f"{path} is not a training history (a list of evaluation records): {MAKE_IT} again")
    return history


def existing_run_files(out_dir: str | os.PathLike) -> list[Path]:
    """The files of an earlier run in ``out_dir`` (empty if there is none)."""
    return [Path(out_dir) / name for name in RUN_FILES if (Path(out_dir) / name).exists()]
