"""The training loop, written out by hand: no Trainer, nothing hidden.

One optimizer step =
  ``grad_accum_steps`` micro-batches, each: forward under autocast, loss / grad_accum_steps,
  backward (scaled by ``GradScaler`` when the dtype is fp16)
  -> unscale the gradients -> clip their norm -> optimizer step -> scheduler step.

Every ``eval_interval`` steps the loss is averaged over ``eval_batches`` batches of both
splits; the best weights are saved to ``best_model_params.pt`` and a full checkpoint to
``checkpoint.pt`` (:mod:`slm_helpers.checkpoint`). ``resume=True`` continues from the
checkpoint and, on a CPU, ends with exactly the losses of an uninterrupted run. The settings,
AdamW, the schedule and the unscale-clip-step live in :mod:`slm_helpers.optim`; the device
and precision in :mod:`slm_helpers.device`; the batches come from a dataset
(:class:`~slm_helpers.data.TokenDataset`) or any object with its ``batch`` method.

The original run this series re-creates had four bugs, each fixed here and taught in
notebook 04: a learning-rate floor above the peak, clipping before unscaling, a schedule
and step counter that advanced per micro-batch, and evaluation costing twice the training.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm  # one live bar in JupyterLab and Colab, text in a terminal

from slm_helpers import processes
from slm_helpers.checkpoint import RunFolder, check_resumable, load_model, model_record, training_record
from slm_helpers.data import TokenDataset
from slm_helpers.device import (
    autocast_context,
    choose_device,
    choose_dtype,
    keep_large_buffers_on_the_heap,
    make_grad_scaler,
)
from slm_helpers.errors import CheckpointError, SlmError, check_int
from slm_helpers.evaluate import SAMPLE_PROMPT, batches_of, estimate_loss, sample_text
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig, make_optimizer, make_scheduler, optimizer_step
from slm_helpers.plan import describe_plan, remaining_time_line
from slm_helpers.processes import RNGState
from slm_helpers.train.run_data import model_config_for, open_run_data

ESTIMATE_AFTER_STEPS = 4  # the expected time of a run is printed after this many of its steps


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


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict]
    steps: int
    tokens_per_second: float = field(default=float("nan"))
    interrupted: bool = False
    steps_run: int = 0  # optimizer steps taken by this call (0: the run was already finished)

    @property
    def best_val_loss(self) -> float:
        """The lowest validation loss of the history: the weights in ``best_model_params.pt``."""
        return min((r["val_loss"] for r in self.history), default=math.inf)


@dataclass
class _Run:
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
        return min((r["val_loss"] for r in self.history), default=math.inf)

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


# ----------------------------------------------------------------------------- the loop


def train(
    preset=None,
    *,
    model_config: GPTConfig | None = None,
    train_config: TrainConfig | None = None,
    data_dir=None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_at_step: int | None = None,
    init_from: str | os.PathLike | None = None,
    progress: bool = True,
    log=print,
) -> TrainResult:
    """Train a GPT and write its best weights, checkpoint and history into ``out_dir``.

    Give a :class:`~slm_helpers.presets.Preset` (or its name: its model, training settings
    and folders; its dataset is prepared first if missing), or ``model_config``,
    ``train_config``, ``data_dir`` and ``out_dir`` directly; explicit arguments win over the
    preset's. ``data_dir`` is a dataset folder, an opened
    :class:`~slm_helpers.data.TokenDataset`, or any batch source with its ``batch`` method.
    ``resume=True`` continues from ``out_dir``'s checkpoint (with the same settings); an
    earlier run in ``out_dir`` is replaced only with ``overwrite=True``. ``stop_at_step``
    stops early, as an interruption would (after writing a checkpoint), which is how the
    resume demonstration and tests interrupt a run.

    ``init_from`` (a weights file, such as a run's ``best_model_params.pt``) fine-tunes: the
    model starts from those weights, with their architecture and tokenizer, and ``data_dir``
    may then be a folder of request records (:mod:`slm_helpers.instruct`); the checkpoint
    records where it started.
    """
    preset, model_config, config, folder = _arguments(preset, model_config, train_config, out_dir, stop_at_step)
    rank = processes.rank_from_environment()  # under torchrun, process 0 holds the folder and writes the files
    with processes.group_left_on_exit(), folder.held() if rank == 0 else contextlib.nullcontext():
        resuming = folder.check_start(resume, overwrite)
        if resume and not resuming:
            log(f"no run in {folder.path} yet: starting from step 0")
        run, reasons = _start_run(preset, model_config, config, data_dir, folder, resuming, log, init_from)
        if overwrite and not resume and run.rank == 0:
            folder.clear()
        if run.world_size > 1:
            run.model = torch.nn.parallel.DistributedDataParallel(
                run.gpt, device_ids=[run.device.index] if run.device.type == "cuda" else None)
        _say_plan(run, reasons)
        return _loop(run, stop_at_step, progress)


def _loop(run: _Run, stop_at_step: int | None, progress: bool) -> TrainResult:
    """Evaluate, accumulate, update, until the last step; an interruption saves a checkpoint."""
    config = run.config
    last_step = min(config.max_steps, stop_at_step) if stop_at_step is not None else config.max_steps
    bar = tqdm(total=config.max_steps, initial=run.step, desc="training", unit="step", dynamic_ncols=True,
               disable=not (progress and run.rank == 0), mininterval=1.0)

    def say(line: str) -> None:  # above the progress bar
        bar.clear()
        run.say(line)
        bar.refresh()

    step_seconds: list[float] = []  # of this call's optimizer steps, evaluations excluded
    eval_seconds: list[float] = []
    interrupted = updating = False
    start_time, start_step, rng_at_step_start = time.perf_counter(), run.step, None
    try:
        run.model.train()
        while run.step <= last_step:
            if run.world_size == 1:  # for a checkpoint on KeyboardInterrupt mid-step
                rng_at_step_start = [asdict(RNGState.capture(run.batch_generator, run.device))]
            if run.due_for_evaluation():
                start = time.perf_counter()
                record = run.evaluate()
                say(describe_record(record, run.keep(record)))
                eval_seconds.append(time.perf_counter() - start)
            if run.step == last_step:
                break
            step_start = time.perf_counter()
            loss = run.accumulate()
            updating = True  # from here until the step is counted, an interrupt keeps the last checkpoint
            run.update()
            updating = False
            step_seconds.append(time.perf_counter() - step_start)
            if len(step_seconds) == ESTIMATE_AFTER_STEPS and run.step < config.max_steps:
                say(remaining_time_line(run.step, config.max_steps, config.eval_interval, step_seconds, eval_seconds,
                                        run.tokens_per_step))
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{run.lr:.2e}", refresh=False)
        if run.step == last_step < config.max_steps:
            run.save(run.rng_states())
            interrupted = True
            say(f"stopped at step {run.step:,} of {config.max_steps:,}; resume=True continues from here")
    except KeyboardInterrupt:
        interrupted = True
        if run.world_size == 1 and not updating and rng_at_step_start is not None:
            # Parameters, optimizer and schedule are still those of the step's start; the batches
            # drawn since are rewound, so resuming repeats the unfinished step exactly.
            run.optimizer.zero_grad(set_to_none=True)
            run.save(rng_at_step_start)
            run.say(f"\ninterrupted at step {run.step:,} of {config.max_steps:,}: checkpoint saved; resume=True "
                    "continues")
        else:  # mid-update, or under torchrun: the weights may be half-updated; the last checkpoint stands
            kept = f"step {run.saved_step:,}'s checkpoint" if run.saved_step is not None else "no checkpoint yet"
            run.say(f"\ninterrupted; {kept} in {run.folder.path} is kept (resume=True continues from it)")
    finally:
        bar.close()
    steps_run, elapsed = run.step - start_step, time.perf_counter() - start_time
    tokens_per_second = steps_run * run.tokens_per_step / elapsed if steps_run else float("nan")
    # Interrupted, the run is where its checkpoint is: that is where a resume continues.
    step = run.saved_step if interrupted and run.saved_step is not None else run.step
    return TrainResult(run.folder.path, run.history, step, tokens_per_second, interrupted, steps_run)


# ----------------------------------------------------------------------------- starting a run


def _arguments(preset, model_config, train_config, out_dir, stop_at_step):
    """The preset (a name is looked up), the settings and the run's folder, checked."""
    from slm_helpers.presets import Preset, get_preset

    preset = get_preset(preset) if isinstance(preset, str) else preset
    if preset is None and None in (model_config, train_config, out_dir):
        raise SlmError("Give a preset (get_preset('ci')), or all of model_config, train_config, data_dir and out_dir.")
    for name, value, kind in (("preset", preset, Preset), ("model_config", model_config, GPTConfig),
                              ("train_config", train_config, TrainConfig)):
        if value is not None and not isinstance(value, kind):
            raise SlmError(f"{name} must be a {kind.__name__}, not {type(value).__name__}: "
                           + ("get_preset('ci') gives one" if kind is Preset else
                              f"{kind.__name__}(**settings) makes one from a dict of settings"))
    if stop_at_step is not None:
        check_int("stop_at_step", stop_at_step, minimum=0, alternative=" (or None)")
    return preset, model_config or preset.model, train_config or preset.train, RunFolder(out_dir or preset.out_dir)


def _start_run(preset, model_config: GPTConfig, config: TrainConfig, data_dir, folder: RunFolder, resuming: bool,
               log, init_from=None) -> tuple[_Run, tuple[str, str]]:
    """The dataset, the processes, the device and precision, and a fresh model (or the one
    ``init_from`` holds; restored from the checkpoint when resuming, once it is checked to be
    this run's)."""
    if data_dir is None and preset is None:
        raise SlmError("Give data_dir (a prepared dataset) or a preset, whose dataset is prepared if missing.")
    base = load_model(init_from) if init_from is not None else None
    if base is not None:
        model_config = replace(base[0].config, dropout=model_config.dropout)
    data = open_run_data(preset, data_dir, base, log)
    rank, local_rank, world_size = processes.start(config.device)
    say = log if rank == 0 else (lambda *a, **k: None)
    model_config = model_config_for(data, model_config, say)
    checkpoint = folder.load_checkpoint() if resuming else None
    if checkpoint is not None:
        identity = data.identity() if hasattr(data, "identity") else None
        for change in check_resumable(checkpoint, folder.checkpoint, model_config, config, data.tokenizer, identity):
            say(f"resuming with other settings than the checkpoint's: {change}")
    device, device_reason = choose_device(config.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
    dtype, dtype_reason = choose_dtype(device, config.dtype)
    if device.type == "cpu":
        keep_large_buffers_on_the_heap()
    torch.manual_seed(config.seed + rank)  # the initial weights and dropout; each process its own stream
    gpt = GPT(model_config)
    if base is not None:
        gpt.load_state_dict(base[0].state_dict())
    run = _Run(gpt.to(device), config, data, folder, device, dtype, rank, world_size, say,
               init_from=str(init_from) if init_from is not None else None)
    if checkpoint is not None:
        run.restore(checkpoint)
        if rank == 0:
            folder.write_history(run.history)  # a damaged or missing history.json is written again
    return run, (device_reason, dtype_reason)


def _say_plan(run: _Run, reasons: tuple[str, str]) -> None:
    """Where and how the run trains, and how much, before its first step."""
    config, world_size = run.config, run.world_size
    processes = f" x {world_size} processes" if world_size > 1 else ""
    run.say(f"device: {run.device} ({reasons[0]}); autocast dtype: {str(run.dtype).removeprefix('torch.')} "
            f"({reasons[1]})" + (f"; {world_size} processes" if world_size > 1 else ""))
    run.say(f"{run.gpt.num_params():,} parameters; {run.tokens_per_step:,} tokens per optimizer step "
            f"({config.batch_size} x {run.gpt.config.block_size} x {config.grad_accum_steps} micro-batches"
            f"{processes})")
    run.say(f"plan: {describe_plan(run.gpt.config, config, world_size)}; the time it takes here is measured over "
            f"its first {ESTIMATE_AFTER_STEPS} steps")


def ensure_trained(preset, log=print) -> list[dict]:
    """The history of ``preset``'s run, training it first (and saying what and for how long)
    if there is no finished run.

    Later notebooks call this so each runs on its own: with notebook 04 already run, it only
    loads ``history.json``. An interrupted run is resumed."""
    from slm_helpers.presets import get_preset

    preset = get_preset(preset) if isinstance(preset, str) else preset
    folder = RunFolder(preset.out_dir)
    with contextlib.suppress(CheckpointError):
        history = folder.load_history()
        if history and history[-1]["step"] >= preset.train.max_steps and folder.weights.is_file():
            log(f"found the {preset.name} preset's finished run in {folder.path}")
            return history
    log(f"no finished {preset.name} run in {folder.path}: training it now "
        f"({describe_plan(preset.model, preset.train)}; notebook 04 explains each step)")
    return train(preset, resume=True, log=log).history
