"""What a weights file says about its model, in words: for the export's model card and the
story box (:mod:`slm_helpers.export`, :mod:`slm_helpers.app`).

A run's ``best_model_params.pt`` records the model's configuration, its tokenizer, the data it
learned from and the step; the run's ``history.json`` beside it has the validation loss of
every evaluation. :func:`open_model` reads the file once and gives the model, its tokenizer and
these facts; what a file does not record is said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from slm_helpers.checkpoint import HISTORY_FILE, load_file, load_history, model_from_file
from slm_helpers.errors import SlmError
from slm_helpers.instruct import REQUESTS_SOURCE
from slm_helpers.model import GPT
from slm_helpers.plots import best_record
from slm_helpers.tokenizer import Tokenizer


@dataclass(frozen=True)
class About:
    parameters: int
    shape: str  # "4 layers, 128 wide, 4 heads, a context of 128 tokens"
    pieces: str  # the modern pieces, or GPT-2's
    tokenizer: str
    data: str  # where the stories came from, and how many
    source: str  # the dataset's source as recorded: "tinystories", a local folder's path, "records of requests"...
    step: int
    validation: str  # the best evaluation's bits per byte, or that it is not recorded
    fine_tuned_from: str | None  # the weights a fine-tuning run (notebook 08) started from
    reads_requests: bool  # fine-tuned on request records: give it words and features

    def lines(self) -> list[str]:
        """The facts as short lines, for a description."""
        tuned = [f"fine-tuned from {self.fine_tuned_from}"] if self.fine_tuned_from else []
        return [f"{self.parameters:,} parameters: {self.shape}", f"pieces: {self.pieces}",
                f"tokenizer: {self.tokenizer}", f"data: {self.data}", *tuned,
                f"trained for {self.step:,} steps; validation: {self.validation}"]


def open_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Tokenizer, About]:
    """The model in the weights file ``path`` (as :func:`~slm_helpers.checkpoint.load_model`
    gives it), its tokenizer, and what the file and the run's history say about it."""
    path = Path(path)
    saved = load_file(path, "weights file")
    model, tokenizer = model_from_file(saved, path, device)
    return model, tokenizer, _about(saved, path, model, tokenizer)


def _about(saved: dict, path: Path, model: GPT, tokenizer: Tokenizer) -> About:
    data = saved.get("dataset") or {}
    c = model.config
    splits = data.get("splits") or {}
    stories = ", ".join(f"{s.get('stories', s.get('records', 0)):,} {name} {'stories' if 'stories' in s else 'records'}"
                        for name, s in splits.items())
    source = str(data.get("source", "not recorded"))
    if Path(source).is_absolute():  # a local folder: its name, not this machine's path to it
        source = f"the local folder {Path(source).name}"
    held_out = ("the development split (training stories held out, --development)"
                if (data.get("source_options") or {}).get("development") else "its validation split")
    try:  # a checkpoint.pt holds its history; a best_model_params.pt has the run's history.json beside it
        history = saved["history"] if "history" in saved else load_history(path.parent)
        at_step = [r for r in history if r.get("step") == saved.get("step")] or [best_record(history)]
        record = at_step[-1]
        validation = (f"{record['val_bpb']:.3f} bits per byte ({record['val_loss']:.3f} nats per token) on "
                      f"{held_out}, at step {record['step']:,}")
    except (SlmError, KeyError):  # no history, or one without bits per byte
        validation = f"not recorded (no {HISTORY_FILE} with bits per byte beside it)"
    return About(
        parameters=model.num_params(),
        shape=f"{c.n_layer} layers, {c.n_embd} wide, {c.n_head} heads, a context of {c.block_size} tokens",
        pieces=", ".join(c.modern_pieces()) or "GPT-2's (learned positions, LayerNorm, GELU, tied head)",
        tokenizer=f"{tokenizer.name} ({tokenizer.n_vocab:,} ids)",
        data=source + (f": {stories}" if stories else ""), source=str(data.get("source", "")),
        step=int(saved.get("step", 0)), validation=validation, fine_tuned_from=saved.get("init_from"),
        reads_requests=data.get("source") == REQUESTS_SOURCE)
