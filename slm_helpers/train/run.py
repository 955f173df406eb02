"""A run in progress: its model, optimizer, schedule, data and folder, and what one step,
one evaluation and one checkpoint do (:class:`Run`); the loop that drives it is
:mod:`slm_helpers.train.loop`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from slm_helpers import processes
from slm_helpers.checkpoint import RunFolder, model_record, training_record
from slm_helpers.data import TokenDataset
from slm_helpers.device import (
    autocast_context,
    make_grad_scaler,
)
from slm_helpers.errors import SlmError
from slm_helpers.evaluate import SAMPLE_PROMPT, batches_of, estimate_loss, sample_text
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig, make_optimizer, make_scheduler, optimizer_step
from slm_helpers.processes import RNGState


class TrainingDiverged(SlmError):
    """The loss became NaN or infinite."""


def accumulate_gradients(model, data, config: TrainConfig, block_size: int, device, dtype, scaler,
                         batch_generator: torch.Generator, world_size: int = 1) -> float:
    """The first half of an optimizer step, as notebook 04 writes it: ``grad_accum_steps``
    micro-batches, each a forward pass under autocast, its loss divided by
    ``grad_accum_steps`` (so the gradients add up to the mean over the whole batch, not the
    sum) and a backward pass (of the scaled loss, with fp16). Returns the mean loss.
    :func:`optimizer_step` is the second half. Under DDP the gradients are averaged across
    processes once, on the last micro-batch."""
    data = batches_of(data)
    total = torch.zeros((), device=device)
    for micro in range(config.grad_accum_steps):
        x, y = data.batch("train", config.batch_size, block_size, batch_generator, device)
        last_micro = micro == config.grad_accum_steps - 1
        with contextlib.nullcontext() if last_micro or world_size == 1 else model.no_sync():
            with autocast_context(device, dtype):
                _, loss = model(x, y)
            loss = loss / config.grad_accum_steps
            scaler.scale(loss).backward()
        total += loss.detach()
    return total.item()


# ----------------------------------------------------------------------------- the state of a run


def lowest_val_loss(history: list[dict]) -> float:
    """The lowest validation loss of a run's history (infinite before its first evaluation):
    the loss of the weights in ``best_model_params.pt``."""
    return min((r["val_loss"] for r in history), default=math.inf)


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict]
    steps: int
    tokens_per_second: float = field(default=float("nan"))
    interrupted: bool = False
    steps_run: int = 0  # optimizer steps taken by this call (0: the run was already finished)
    model_config: GPTConfig | None = None  # the model it trained: what a break-it exercise's check reads

    @property
    def best_val_loss(self) -> float:
        return lowest_val_loss(self.history)


@dataclass
class Run:
    """One training run's state: what the loop of :func:`train` advances, evaluates and keeps.
    Its files are its :class:`~slm_helpers.checkpoint.RunFolder`'s."""

    model: torch.nn.Module  # the GPT, or the GPT wrapped in DistributedDataParallel under torchrun
    config: TrainConfig
    data: TokenDataset
    folder: RunFolder
    device: torch.device
    dtype: torch.dtype
    rank: int = 0
    world_size: int = 1
    say: Callable[..., None] = print
    init_from: str | None = None  # the weights file a fine-tuning run started from
    step: int = 0
    history: list[dict] = field(default_factory=list)
    tokens_seen: int = 0  # counted step by step: a resumed run may have another number of processes
    saved_step: int | None = None  # the step of checkpoint.pt as this run last wrote or read it

    def __post_init__(self) -> None:
        self.gpt: GPT = self.model.module if hasattr(self.model, "module") else self.model
        self.optimizer = make_optimizer(self.gpt, self.config)
        self.scheduler = make_scheduler(self.optimizer, self.config)
        self.scaler = make_grad_scaler(self.device, self.dtype)
        self.batch_generator = torch.Generator().manual_seed(self.config.seed + self.rank)  # each process its batches
        self.tokens_per_step = self.config.tokens_per_step(self.gpt.config.block_size, self.world_size)

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    @property
    def best_val_loss(self) -> float:
        return lowest_val_loss(self.history)

    def due_for_evaluation(self) -> bool:
        at_step = bool(self.history) and self.history[-1]["step"] == self.step
        return not at_step and (self.step % self.config.eval_interval == 0 or self.step == self.config.max_steps)

    # ------------------------------------------------------------------- one optimizer step

    def accumulate(self) -> float:
        """The first half of an optimizer step: the micro-batches' gradients. Returns the loss."""
        loss = accumulate_gradients(self.model, self.data, self.config, self.gpt.config.block_size, self.device,
                                    self.dtype, self.scaler, self.batch_generator, self.world_size)
        if not math.isfinite(loss):
            last = f"its checkpoint is from step {self.history[-1]['step']:,}, " if self.history else ""
            raise TrainingDiverged(
                f"The training loss became {loss} at step {self.step + 1:,} (learning rate {self.lr:.2e}): {last}the "
                "last step whose weights were finite and saved. Try a lower learning_rate, a longer warmup_steps, keep "
                "grad_clip > 0, or dtype='float32', in a new run (--overwrite)."
            )
        return loss

    def update(self) -> None:
        """The second half: unscale, clip, optimizer step, then the schedule, once per step."""
        optimizer_step(self.model, self.optimizer, self.scaler, self.config.grad_clip)
        self.scheduler.step()  # once per optimizer step, not per micro-batch (bug 3)
        self.step += 1
        self.tokens_seen += self.tokens_per_step

    # ------------------------------------------------------------------- evaluation

    def evaluate(self) -> dict:
        """Both splits' loss (and bits per byte), and a greedy sample: the history's next record."""
        losses = estimate_loss(self.model, self.data, self.config, self.gpt.config.block_size, self.device, self.dtype,
                               seed=self.config.seed + 1 + self.rank)
        record = dict(step=self.step, tokens=self.tokens_seen, lr=self.lr, train_loss=losses["train"],
                      val_loss=losses["validation"])
        if hasattr(self.data, "bits_per_byte"):  # a dataset that counted its bytes of text
            record.update(train_bpb=self.data.bits_per_byte("train", losses["train"]),
                          val_bpb=self.data.bits_per_byte("validation", losses["validation"]))
        prompt = getattr(self.data, "sample_prompt", SAMPLE_PROMPT)  # request records: a request
        record["sample"] = sample_text(self.gpt, self.data.tokenizer, prompt) if self.rank == 0 else ""
        return record

    def keep(self, record: dict) -> bool:
        """Write the record's files: the best weights if it is the best so far, then the
        checkpoint and the history. The run counts the record only once its files are written.
        Returns whether it was the best."""
        is_best = record["val_loss"] < self.best_val_loss
        rng_states = self.rng_states()  # every process takes part in gathering them
        if self.rank == 0:
            weights = self.model_record()
            if is_best:
                self.folder.save_weights(weights, record["val_loss"])
            self.folder.save_checkpoint(weights, self.training_record(rng_states, self.history + [record]))
        self.history.append(record)
        self.saved_step = self.step
        return is_best

    # ------------------------------------------------------------------- files

    def model_record(self) -> dict:
        if not all(torch.isfinite(p).all() for p in self.gpt.parameters()):
            raise TrainingDiverged(f"the weights at step {self.step:,} are not finite (NaN or infinity); they were not "
                                   f"saved: the files in {self.folder.path} are from the last finite step")
        return model_record(self.gpt, self.data.tokenizer, self.dataset_identity(), self.step, self.init_from)

    def dataset_identity(self) -> dict | None:
        return self.data.identity() if hasattr(self.data, "identity") else None

    def training_record(self, rng_states: list[dict], history: list[dict]) -> dict:
        return training_record(self.optimizer, self.scheduler, self.scaler, rng_states, history, self.tokens_seen,
                               self.config)

    def rng_states(self) -> list[dict]:
        """Every process's random state (gathered to all of them under torchrun)."""
        return processes.gather(asdict(RNGState.capture(self.batch_generator, self.device)), self.world_size)

    def save(self, rng_states: list[dict]) -> None:
        """A checkpoint of the run as it is now (at an interruption), with its history as it is."""
        if self.rank == 0:
            self.folder.save_checkpoint(self.model_record(), self.training_record(rng_states, self.history))
        self.saved_step = self.step

    def restore(self, checkpoint: dict) -> None:
        """Continue from ``checkpoint``: weights, optimizer, schedule, scaler, history and each
        process's batch stream."""
        self.gpt.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler.is_enabled() and checkpoint["scaler"]:  # a CPU or bf16 run saved a disabled, empty scaler
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.step, self.history, self.tokens_seen = checkpoint["step"], checkpoint["history"], checkpoint["tokens_seen"]
        self.saved_step = self.step
        saved_rng, world_size = checkpoint["rng"], self.world_size
        if self.rank < len(saved_rng):  # each process continues its own batch stream...
            RNGState(**saved_rng[self.rank]).restore(self.batch_generator, self.device)
        if len(saved_rng) > world_size:  # ...and the streams of processes that are gone end here
            self.say(f"the checkpoint was written by {len(saved_rng)} processes, this run has {world_size}: it "
                     f"continues the batch streams of ranks 0-{world_size - 1}; the others end here")
        elif len(saved_rng) < world_size:
            self.say(f"the checkpoint was written by {len(saved_rng)} process(es), this run has {world_size}: ranks "
                     f"{len(saved_rng)}-{world_size - 1} start fresh batch streams (seed + rank)")
        self.say(f"resumed from {self.folder.checkpoint} at step {self.step:,}")


def describe_record(record: dict, is_best: bool) -> str:
    """The line an evaluation prints: each loss in nats per token, and in bits per byte."""
    def loss(split: str) -> str:
        per_byte = record.get(f"{split}_bpb")
        return f"{record[f'{split}_loss']:.4f}" + (f" ({per_byte:.3f} bpb)" if per_byte is not None else "")

    return (f"step {record['step']:>6,}: train loss {loss('train')}, val loss {loss('val')}, lr {record['lr']:.2e}"
            + ("  (best so far, saved)" if is_best else ""))


