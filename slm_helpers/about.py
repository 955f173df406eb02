"""What a weights file says about its model, in words: for the export's model card and the
story box (:mod:`slm_helpers.export`, :mod:`slm_helpers.app`).

A run's ``best_model_params.pt`` records the model's configuration, its tokenizer, the data it
learned from and the step; the run's ``history.json`` beside it has the validation loss of
every evaluation. :func:`about_model` gathers them; what a file does not record is said so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from slm_helpers.checkpoint import HISTORY_FILE, load_file
from slm_helpers.model import GPT
from slm_helpers.tokenizer import Tokenizer


@dataclass(frozen=True)
class About:
    parameters: int
    shape: str  # "4 layers, 128 wide, 4 heads, a context of 128 tokens"
    pieces: str  # the modern pieces, or GPT-2's
    tokenizer: str
    data: str  # where the stories came from, and how many
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


def about_model(path: str | Path, model: GPT, tokenizer: Tokenizer) -> About:
    """The facts of the weights file ``path`` (already loaded as ``model`` and ``tokenizer``)."""
    path = Path(path)
    saved = load_file(path, "weights file")
    data = saved.get("dataset") or {}
    c = model.config
    splits = data.get("splits") or {}
    stories = ", ".join(f"{s.get('stories', s.get('records', 0)):,} {name} {'stories' if 'stories' in s else 'records'}"
                        for name, s in splits.items())
    source = str(data.get("source", "not recorded"))
    if Path(source).is_absolute():  # a local folder: its name, not this machine's path to it
        source = f"the local folder {Path(source).name}"
    best = _best_record(path.parent / HISTORY_FILE)
    held_out = ("the development split (training stories held out, --development)"
                if (data.get("source_options") or {}).get("development") else "its validation split")
    validation = (f"{best['val_bpb']:.3f} bits per byte ({best['val_loss']:.3f} nats per token) on {held_out}, at "
                  f"step {best['step']:,}" if best and "val_bpb" in best else
                  f"not recorded (no {HISTORY_FILE} beside it)")
    return About(
        parameters=model.num_params(),
        shape=f"{c.n_layer} layers, {c.n_embd} wide, {c.n_head} heads, a context of {c.block_size} tokens",
        pieces=", ".join(c.modern_pieces()) or "GPT-2's (learned positions, LayerNorm, GELU, tied head)",
        tokenizer=f"{tokenizer.name} ({tokenizer.n_vocab:,} ids)",
        data=f"{source}" + (f": {stories}" if stories else ""),
        step=int(saved.get("step", 0)), validation=validation, fine_tuned_from=saved.get("init_from"),
        reads_requests="request" in source.lower() or "instruct" in source.lower())


def _best_record(path: Path) -> dict | None:
    try:
        return min(json.loads(path.read_text()), key=lambda r: r["val_loss"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
