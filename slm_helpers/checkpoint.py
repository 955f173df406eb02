"""A training run's folder and its files: written whole, read safely, checked before a resume.

A run's folder (``runs/<preset>`` by default) holds

* ``best_model_params.pt``: the weights of the best evaluation so far, with what using them
  needs: the model's configuration and its tokenizer (what :func:`load_model` reads), the
  data it was trained on, the step and the validation loss;
* ``checkpoint.pt``: the same record for the latest evaluation, plus everything needed to
  continue exactly: optimizer, schedule, scaler, random-number states, history, settings;
* ``history.json``: one record per evaluation (step, tokens, lr, losses, a sample).

:class:`RunFolder` is the one place that names, writes and reads these files: every file is
written under a temporary name and renamed into place, so a crash or a full disk never
leaves a half-written file where a good one was; everything loads with
``torch.load(..., weights_only=True)``, which refuses to run pickled code; and a folder is
held by one training process at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from slm_helpers.errors import CheckpointError, SlmError, TokenizerError
from slm_helpers.folders import check_folder, hold, write_atomically, write_json
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig
from slm_helpers.tokenizer import GPT2Tokenizer, Tokenizer
from slm_helpers.vocab import CompactVocabulary

BEST_WEIGHTS_FILE = "best_model_params.pt"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
LOCK_FILE = ".run.lock"
RUN_FILES = (CHECKPOINT_FILE, BEST_WEIGHTS_FILE, HISTORY_FILE)
FORMAT_VERSION = 3  # 3: the tokenizer and the dataset travel with the weights; best_val_loss comes from the history
# What every weights file holds (the model and what using it needs), and what a checkpoint adds.
MODEL_KEYS = ("step", "model", "model_config", "tokenizer", "dataset", "init_from", "format_version")
CHECKPOINT_KEYS = ("step", "model", "optimizer", "scheduler", "scaler", "rng", "history", "tokens_seen",
                   "model_config", "train_config", "tokenizer", "dataset", "init_from", "format_version")
MAKE_IT = "notebook 04 or `python -m slm_helpers.train` writes it"
# What a resumed run must share with its checkpoint: the model's shapes and the schedule. The rest
# (batch size, evaluation, dropout, device, precision...) may change, and is said when it does.
SHAPE_SETTINGS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "bias", "tokenizer", "position", "norm",
                  "mlp", "qk_norm", "tie_head")
SCHEDULE_SETTINGS = ("max_steps", "warmup_steps", "learning_rate", "min_lr", "optimizer", "muon_lr", "embedding_lr",
                     "head_lr", "schedule", "decay_fraction")


class RunExistsError(CheckpointError):
    """The output folder holds an earlier run, and neither resume nor overwrite was asked for."""


def model_record(model: GPT, tokenizer: Tokenizer, dataset: dict | None, step: int, init_from: str | None) -> dict:
    """What every weights file of a run holds: the weights and what using them needs (the
    model's configuration and tokenizer, the data it learned from, the file it started from)."""
    return {"step": step, "model": model.state_dict(), "model_config": asdict(model.config),
            "tokenizer": tokenizer.record(), "dataset": dataset, "init_from": init_from,
            "format_version": FORMAT_VERSION}


def training_record(optimizer, scheduler, scaler, rng: list[dict], history: list[dict], tokens_seen: int,
                    train_config: TrainConfig) -> dict:
    """What a checkpoint adds to the model: everything needed to continue exactly."""
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng, "history": history, "tokens_seen": tokens_seen, "train_config": asdict(train_config)}


class RunFolder:
    """The folder of one training run and the files in it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.checkpoint, self.weights, self.history_file = (self.path / name for name in RUN_FILES)

    def existing(self) -> list[Path]:
        """The files of an earlier run in the folder (empty if there is none)."""
        return [self.path / name for name in RUN_FILES if (self.path / name).exists()]

    def check_start(self, resume: bool, overwrite: bool) -> bool:
        """Never replace or lose an earlier run by accident. A new run in a folder that holds
        one needs ``overwrite``; ``resume`` continues it, and needs its checkpoint. Returns
        whether there is a checkpoint to resume from."""
        check_folder(self.path, "the run's files", CheckpointError)
        found = self.existing()
        names = ", ".join(p.name for p in found)
        if found and not resume and not overwrite:
            raise RunExistsError(f"{self.path} already holds a run ({names}): resume it with --resume (resume=True), "
                                 "replace it with --overwrite (overwrite=True), or choose another output folder")
        if resume and found and not self.checkpoint.exists():
            raise CheckpointError(f"{self.path} holds a run ({names}) but not its {CHECKPOINT_FILE}, which resuming "
                                  "needs: its files are kept; start a new run there with --overwrite (overwrite=True), "
                                  "or in another output folder")
        return resume and self.checkpoint.exists()

    @contextlib.contextmanager
    def held(self):
        """The folder for this process alone while it trains (created, and checked writable,
        before any step): a second run into it is refused, naming the first."""
        check_folder(self.path, "the run's files", CheckpointError)
        with hold(self.path, LOCK_FILE, "in use by a training run", CheckpointError):
            yield

    def clear(self) -> None:
        """Remove an earlier run's files (``overwrite``)."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)

    def save_weights(self, record: dict, val_loss: float) -> None:
        """The best weights so far (``record`` from :func:`model_record`)."""
        atomic_save({**record, "val_loss": val_loss}, self.weights)

    def save_checkpoint(self, record: dict, training: dict) -> None:
        """Everything needed to continue (``record`` from :func:`model_record`, ``training`` from
        :func:`training_record`), then ``history.json``."""
        atomic_save({**record, **training}, self.checkpoint)
        self.write_history(training["history"])

    def write_history(self, history: list[dict]) -> None:
        write_json(history, self.history_file)

    def load_checkpoint(self) -> dict:
        return load_checkpoint(self.checkpoint)

    def load_history(self) -> list[dict]:
        return load_history(self.path)


# ----------------------------------------------------------------------------- reading files


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``. Given an open file,
    torch writes through Python, so a full disk is an ``OSError`` (ENOSPC), not an opaque
    error from torch's C++ writer."""
    write_atomically(Path(path), lambda f: torch.save(obj, f))


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with torch's errors turned
    into one :class:`CheckpointError` line. Loads on the CPU: ``load_state_dict`` moves the
    weights to the model's device, and random-number states must stay CPU tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}: {MAKE_IT}")
    try:
        with warnings.catch_warnings():
            # Damaged bytes that begin like a pickle of another protocol make torch warn before it
            # fails; the one line below says all there is to say.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
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
            f"{path} holds best weights (the model only, from step {saved.get('step', '?')}), not a training "
            f"checkpoint: "
            f"resuming needs {CHECKPOINT_FILE} as train writes it, with the optimizer, schedule and step"
        )
    if missing and "optimizer" in saved and "format_version" in saved:
        raise CheckpointError(f"{path} was written by another version of slm_helpers (format "
                              f"{saved.get('format_version')}, this one reads {FORMAT_VERSION}): start a new run with "
                              "--overwrite (overwrite=True)")
    if missing:
        raise CheckpointError(
            f"{path} is not a training checkpoint of slm_helpers.train (it lacks {', '.join(missing)}): "
            f"resume from the {CHECKPOINT_FILE} of a run, or start a new run"
        )
    if saved["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by another version of slm_helpers (format "
                              f"{saved['format_version']}, this one reads {FORMAT_VERSION}): start a new run with "
                              "--overwrite (overwrite=True)")
    return saved


def load_history(out_dir: str | os.PathLike) -> list[dict]:
    """The evaluation records of a run: step, tokens, lr, losses, sample."""
    path = Path(out_dir) / HISTORY_FILE
    if not path.is_file():
        raise CheckpointError(f"no {HISTORY_FILE} in {out_dir}: train first ({MAKE_IT})")
    again = f"python -m slm_helpers.train --resume with the same settings writes it again from {CHECKPOINT_FILE}"
    try:
        history = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}): {again}") from None
    if not isinstance(history, list) or not all(isinstance(r, dict) and "val_loss" in r for r in history):
        raise CheckpointError(f"{path} is not a training history (a list of evaluation records): {again}")
    return history


def model_config_of(saved: dict, path: Path) -> GPTConfig:
    """The model configuration a file holds; a setting it lacks takes its default."""
    try:
        return GPTConfig.from_dict(saved["model_config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path} holds a model configuration this version cannot build ({error})") from None


def tokenizer_of(saved: dict, config: GPTConfig, path: Path) -> Tokenizer:
    """The tokenizer a weights file names (files from before it was recorded: GPT-2's, or the
    compact ``vocabulary`` they carried), checked against the model it belongs to."""
    try:
        if saved.get("tokenizer") is not None:
            tokenizer = Tokenizer.from_record(saved["tokenizer"], str(path))
        elif saved.get("vocabulary") is not None:
            tokenizer = GPT2Tokenizer(CompactVocabulary.from_dict(saved["vocabulary"], f"the vocabulary in {path}"))
        else:
            tokenizer = GPT2Tokenizer()
    except TokenizerError as error:
        raise CheckpointError(str(error)) from None
    if tokenizer.n_vocab != config.vocab_size:
        kind = "a compact vocabulary" if tokenizer.is_compact else "the tokenizer"
        raise CheckpointError(f"{path} holds {kind} of {tokenizer.n_vocab:,} ids for a model of vocab_size "
                              f"{config.vocab_size:,}: the mapping is not this model's; {MAKE_IT}")
    return tokenizer


def describe_mismatch(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> str:
    """Every difference between a model's state dict and a saved one, on one line."""
    parts = []
    shapes = [f"{k} {tuple(saved[k].shape)} in the file vs {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in saved and hasattr(saved[k], "shape") and saved[k].shape != v.shape]
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if shapes:
        parts.append("shapes differ: " + "; ".join(shapes))
    if missing:
        parts.append(f"missing from the file: {', '.join(missing)}")
    if unexpected:
        parts.append(f"not in the model: {', '.join(unexpected)}")
    return ". ".join(parts)


def check_finite(state: dict[str, torch.Tensor], path) -> None:
    """Refuse weights holding NaN or infinity: a model that diverged writes nothing sensible."""
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(f"{path} holds weights that are not finite (NaN or infinity in {', '.join(bad[:3])}"
                              f"{' ...' if len(bad) > 3 else ''}): the run that wrote them diverged; use an earlier "
                              "checkpoint or train again with a lower learning rate")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               config: GPTConfig | None = None) -> tuple[GPT, Tokenizer]:
    """A GPT in eval mode and the tokenizer whose ids it reads, from ``best_model_params.pt``
    or a ``checkpoint.pt`` (both hold the model's configuration and tokenizer), loaded with
    ``weights_only=True``. A bare state dict, as the original script saved, needs ``config``
    (and is taken to read GPT-2's ids)."""
    path = Path(path)
    return model_from_file(load_file(path, "weights file"), path, device, config)


def model_from_file(saved, path: Path, device: str | torch.device = "cpu",
                    config: GPTConfig | None = None) -> tuple[GPT, Tokenizer]:
    """:func:`load_model` of what :func:`load_file` read from ``path`` (for a caller that also
    reads the file's other records, without loading it twice)."""
    from slm_helpers.device import choose_device

    device = device if isinstance(device, torch.device) else choose_device(device)[0]
    if isinstance(saved, dict) and "model" in saved and "model_config" in saved:
        config, state = model_config_of(saved, path), saved["model"]
        tokenizer = tokenizer_of(saved, config, path)
        if "tokenizer" not in saved["model_config"]:  # a file from before the model named its tokenizer
            config = GPTConfig(**{**asdict(config), "tokenizer": tokenizer.name})
    elif config is not None and isinstance(saved, dict):
        if not isinstance(config, GPTConfig):
            raise CheckpointError(f"config must be a GPTConfig, not {type(config).__name__}")
        state, tokenizer = saved, tokenizer_of({}, config, path)
    elif isinstance(saved, dict) and all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise CheckpointError(
            f"{path} holds bare weights without a model configuration (as the original script saved them): use the "
            f"best_model_params.pt or checkpoint.pt that slm_helpers.train writes, or in Python "
            f"load_model(path, config=GPTConfig(...))"
        )
    else:
        raise CheckpointError(f"{path} holds no model weights that slm_helpers can read; {MAKE_IT}")
    if config.tokenizer != tokenizer.name:
        raise CheckpointError(f"{path}: the model reads {config.tokenizer!r} ids but the file's tokenizer is "
                              f"{tokenizer.name!r}: the file has been changed; {MAKE_IT} again")
    model = GPT(config)
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"{path} does not fit the model {config}: {mismatch}")
    check_finite(state, path)
    model.load_state_dict(state)
    return model.to(device).eval(), tokenizer


# ----------------------------------------------------------------------------- resuming


def _differences(saved: dict, now: dict, names: tuple[str, ...]) -> list[str]:
    def same(a, b):
        return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    return [f"{k} {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
            for k in names if not same(saved.get(k), now.get(k))]


def _describe_tokenizer(name: str) -> str:
    if name == "gpt2":
        return "GPT-2's full vocabulary"
    size, fingerprint = name.rsplit("-", 2)[-2:]
    return f"a compact vocabulary of {int(size):,} ids (mapping {fingerprint})"


def _describe_data(identity: dict) -> str:
    splits = ", ".join(f"{s['records']:,} {name} records" if "records" in s else
                       f"{s['stories']:,} {name} stories ({s['tokens']:,} tokens)"
                       for name, s in identity["splits"].items())
    options = f" with {identity['source_options']}" if identity["source_options"] else ""
    return f"{identity['source']!r}{options}: {splits}"


def check_resumable(checkpoint: dict, path: Path, model_config: GPTConfig, config: TrainConfig,
                    tokenizer: Tokenizer, dataset: dict | None) -> list[str]:
    """Resume only the run the checkpoint holds: the same model shapes, the same vocabulary, the
    same data and the same schedule (a longer ``max_steps``, say, would silently bend the
    learning rate back up from its floor). Returns what else changed, to be said."""
    saved_tokenizer = checkpoint["tokenizer"]["name"] if isinstance(checkpoint["tokenizer"], dict) else None
    if saved_tokenizer != tokenizer.name:
        where = dataset["path"] if dataset else "this dataset"
        raise CheckpointError(f"{path} was trained with {_describe_tokenizer(str(saved_tokenizer))}, but {where} "
                              f"has {_describe_tokenizer(tokenizer.name)}: resume on the dataset the run was trained "
                              "on, or start a new run with --overwrite")
    saved_config = asdict(model_config_of(checkpoint, path))
    # A setting the checkpoint lacks was written before it existed: it trained with its default.
    saved_train = {**asdict(TrainConfig()), **checkpoint["train_config"]}
    now_config, now_train = asdict(model_config), asdict(config)
    differences = _differences(saved_config, now_config, SHAPE_SETTINGS)
    differences += _differences(saved_train, now_train, SCHEDULE_SETTINGS)
    if differences:
        raise CheckpointError(
            f"{path} was trained with other settings ({'; '.join(differences)}): resume with the same settings, or "
            "start a new run with --overwrite (overwrite=True) or another output folder"
        )
    saved_data = checkpoint["dataset"]
    if saved_data is not None and dataset is not None:
        keys = ("source", "source_options", "splits", "fingerprint")  # a fingerprint: request records only
        if any(saved_data.get(k) != dataset.get(k) for k in keys):
            raise CheckpointError(f"{path} was trained on {_describe_data(saved_data)}, but {dataset['path']} holds "
                                  f"{_describe_data(dataset)}: resume on the data the run was trained on, or start a "
                                  "new run with --overwrite")
    others = tuple(k for k in now_config if k not in SHAPE_SETTINGS) + tuple(k for k in now_train
                                                                           if k not in SCHEDULE_SETTINGS)
    changed = _differences({**saved_config, **saved_train}, {**now_config, **now_train}, others)
    return [change.replace(" in the checkpoint, ", " in the checkpoint, resumed with ").replace(" now", "")
            for change in changed]


__all__ = [
    "BEST_WEIGHTS_FILE",
    "CHECKPOINT_FILE",
    "HISTORY_FILE",
    "CheckpointError",
    "RunExistsError",
    "RunFolder",
    "SlmError",
    "check_resumable",
    "load_checkpoint",
    "load_history",
    "load_model",
    "model_record",
]
