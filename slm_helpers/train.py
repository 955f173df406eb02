"""The training loop, written out by hand: no Trainer, nothing hidden.

One optimizer step =
  ``grad_accum_steps`` micro-batches, each: forward under autocast, loss / grad_accum_steps,
  backward (scaled by ``GradScaler`` when the dtype is fp16)
  -> unscale the gradients -> clip their norm -> optimizer step -> scheduler step.

The settings, AdamW, the schedule (warmup then cosine, counted in optimizer steps) and the
unscale-clip-step live in :mod:`slm_helpers.optim`; the device and precision in
:mod:`slm_helpers.device`; the files in :mod:`slm_helpers.checkpoint`. Every ``eval_interval`` steps the loss is averaged over ``eval_batches`` batches of
both splits; the best weights are saved to ``best_model_params.pt``, a full checkpoint
(model, optimizer, scheduler, scaler, step, RNG states, history) to ``checkpoint.pt`` and the
history to ``history.json``. ``resume=True`` continues from the checkpoint and, on a CPU,
ends with exactly the losses of an uninterrupted run.

The original run this series re-creates had four bugs, each fixed here and taught in
notebook 04: a learning-rate floor above the peak, clipping before unscaling, a schedule
and step counter that advanced per micro-batch, and evaluation costing twice the training.

From a terminal, also under ``torchrun --nproc_per_node=N`` (DistributedDataParallel)::

    python -m slm_helpers.train --preset ci --out-dir runs/ci [--max-iters N] [--resume]
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm  # one live bar in JupyterLab and Colab, text in a terminal

from slm_helpers.checkpoint import (
    BEST_WEIGHTS_FILE, CHECKPOINT_FILE, CHECKPOINT_VERSION, HISTORY_FILE, RUN_FILES, CheckpointError, atomic_save,
    atomic_write_json, existing_run_files, load_checkpoint, load_history,
)
from slm_helpers.data import (
    DataError, check_folder, dataset_vocabulary, ensure_dataset, get_batch, read_info, verify_dataset,
)
from slm_helpers.device import (
    autocast_context, choose_device, choose_dtype, keep_large_buffers_on_the_heap, make_grad_scaler,
)
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig, learning_rates, make_optimizer, make_scheduler, optimizer_step
from slm_helpers.presets import PRESETS, get_preset
from slm_helpers.vocab import CompactVocabulary, tokenizer_for

__all__ = [
    "BEST_WEIGHTS_FILE", "CHECKPOINT_FILE", "HISTORY_FILE", "TrainConfig", "TrainResult", "TrainingDiverged",
    "RunExistsError", "choose_device", "choose_dtype", "make_grad_scaler", "load_checkpoint", "load_history",
    "make_optimizer", "make_scheduler", "learning_rates", "accumulate_gradients", "optimizer_step", "estimate_loss",
    "train", "ensure_trained",
]

# Under torchrun, rank 0 prepares the dataset while the others wait, which for all of TinyStories
# takes longer than NCCL's default 10 minutes.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=2)
ESTIMATE_AFTER_STEPS = 4  # the expected time of a run is printed after this many of its steps
# Settings that may change when a run is resumed: where it runs and in which precision.
RESUMABLE_CHANGES = ("device", "dtype")


SAMPLE_PROMPT = "Once upon a time"
SAMPLE_TOKENS = 24


@torch.no_grad()
def sample_text(model: GPT, device, prompt: str = SAMPLE_PROMPT, tokens: int = SAMPLE_TOKENS,
                vocabulary: CompactVocabulary | None = None) -> str:
    """What the model writes now: ``prompt`` continued greedily (deterministic, so the saved
    samples of a run show what training changed, not chance). Recorded at every evaluation;
    notebook 05 prints them from step 0 to the end. A model trained on a compact vocabulary
    needs its ``vocabulary``."""
    enc = tokenizer_for(vocabulary)
    was_training = model.training
    model.eval()
    ids = enc.encode_ordinary(prompt)
    for _ in range(tokens):
        logits, _ = model(torch.tensor([ids[-model.config.block_size:]], device=device))
        ids.append(int(logits[0, -1].argmax()))
    model.train(was_training)
    return enc.decode(ids)


def accumulate_gradients(model, data_dir, config: TrainConfig, block_size: int, device, dtype, scaler,
                         batch_generator: torch.Generator, world_size: int = 1) -> float:
    """The first half of an optimizer step, as notebook 04 writes it: ``grad_accum_steps``
    micro-batches, each a forward pass under autocast, its loss divided by
    ``grad_accum_steps`` (so the gradients add up to the mean over the whole batch, not the
    sum) and a backward pass (of the scaled loss, with fp16). Returns the mean loss.
    :func:`optimizer_step` is the second half. Under DDP the gradients are averaged across
    processes once, on the last micro-batch."""
    total = torch.zeros((), device=device)
    for micro in range(config.grad_accum_steps):
        x, y = get_batch(data_dir, "train", config.batch_size, block_size, device, batch_generator)
        last_micro = micro == config.grad_accum_steps - 1
        with contextlib.nullcontext() if last_micro or world_size == 1 else model.no_sync():
            with autocast_context(device, dtype):
                _, loss = model(x, y)
            loss = loss / config.grad_accum_steps
            scaler.scale(loss).backward()
        total += loss.detach()
    return total.item()


# ----------------------------------------------------------------------------- evaluation


def _all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (sum, then divide: ``ReduceOp.AVG`` is missing
    on gloo in older torch versions)."""
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
    return value / torch.distributed.get_world_size()


@torch.no_grad()
def estimate_loss(model, data_dir, config: TrainConfig, block_size: int, device, dtype, seed: int) -> dict[str, float]:
    """Mean loss over ``eval_batches`` batches of each split. The batches come from their own
    generator (the same ones at every evaluation), so evaluating never changes training."""
    was_training = model.training
    model.eval()
    losses = {}
    for split in ("train", "validation"):
        generator = torch.Generator().manual_seed(seed)
        total = torch.zeros((), device=device)
        for _ in range(config.eval_batches):
            x, y = get_batch(data_dir, split, config.batch_size, block_size, device, generator)
            with autocast_context(device, dtype):
                _, loss = model(x, y)
            total += loss.float()
        losses[split] = total / config.eval_batches
        if torch.distributed.is_initialized():  # each process evaluated its own batches: average them
            losses[split] = _all_reduce_mean(losses[split])
    model.train(was_training)
    return {split: value.item() for split, value in losses.items()}


# ----------------------------------------------------------------------------- checks before a run


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class RunExistsError(ValueError):
    """The output folder holds an earlier run, and neither resume nor overwrite was asked for."""


def check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Never replace an earlier run by accident: a new run in a folder that holds one needs
    ``overwrite=True`` (``--overwrite``); ``resume=True`` continues it instead."""
    check_folder(out_dir, "the run's files")
    found = existing_run_files(out_dir)
    if found and not resume and not overwrite:
        raise RunExistsError(
            f"{out_dir} already holds a run ({', '.join(p.name for p in found)}): resume it with --resume "
            f"(resume=True), replace it with --overwrite (overwrite=True), or choose another output folder"
        )


def check_dataset_fits(data_dir: Path, model_config: GPTConfig) -> None:
    """The dataset must be complete, and its token ids must be ids the model has."""
    info = read_info(data_dir)
    if info is None:
        raise DataError(f"{data_dir} holds no complete dataset: prepare it first (notebook 01 or python -m slm_helpers.data)")
    verify_dataset(info)
    if info.tokenizer != "gpt2":
        raise DataError(f"{data_dir} was tokenized with {info.tokenizer!r}, but this series trains on GPT-2 ids: "
                        "prepare the dataset again with slm_helpers.data")
    if info.vocab == "full" and info.n_vocab > model_config.vocab_size:  # a compact one sets vocab_size
        raise DataError(f"{data_dir} holds ids of a {info.n_vocab:,}-token vocabulary, more than the model's "
                        f"vocab_size={model_config.vocab_size:,}: give the model vocab_size >= {info.n_vocab:,}")


def _differences(saved: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    def same(a, b):
        return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    return [f"{k} {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
            for k in now if k not in ignore and not same(saved.get(k), now.get(k))]


def check_resumable(checkpoint: dict, path: Path, model_config: GPTConfig, config: TrainConfig) -> None:
    """Resume only the run the checkpoint holds: the same model and the same schedule. A longer
    ``max_steps``, say, would silently bend the learning rate back up from its floor. (A
    compact vocabulary's size comes from the dataset: :func:`check_same_vocabulary`.)"""
    compact = checkpoint.get("vocabulary") is not None
    differences = _differences(checkpoint["model_config"], asdict(model_config), ("vocab_size",) if compact else ())
    differences += _differences(checkpoint["train_config"], asdict(config), ignore=RESUMABLE_CHANGES)
    if differences:
        raise CheckpointError(
            f"{path} was trained with other settings ({'; '.join(differences)}): resume with the same settings, or "
            "start a new run with --overwrite (overwrite=True) or another output folder"
        )


def check_same_vocabulary(checkpoint: dict, path: Path, vocabulary: CompactVocabulary | None, data_dir: Path) -> None:
    """A run resumes only on a dataset with the vocabulary it was trained on: the same ids must
    mean the same tokens."""
    saved = checkpoint.get("vocabulary")
    saved = CompactVocabulary.from_dict(saved, f"the mapping in {path}") if saved else None
    if saved != vocabulary:
        def name(v):
            return "GPT-2's full vocabulary" if v is None else f"a compact vocabulary of {v.size:,} ids"
        raise CheckpointError(f"{path} was trained with {name(saved)}, but {data_dir} has {name(vocabulary)}: resume "
                              "on the dataset the run was trained on, or start a new run with --overwrite")


def vocabulary_for_model(data_dir: Path, model_config: GPTConfig, log) -> tuple[CompactVocabulary | None, GPTConfig]:
    """The dataset's compact vocabulary (or None), and the model configuration with the
    ``vocab_size`` that fits it: training takes a compact vocabulary's size from the data."""
    vocabulary = dataset_vocabulary(data_dir)
    if vocabulary is None or model_config.vocab_size == vocabulary.size:
        return vocabulary, model_config
    log(f"vocab_size {vocabulary.size:,} (not {model_config.vocab_size:,}): {data_dir} has a compact vocabulary "
        f"covering {vocabulary.coverage.get('train', float('nan')):.2%} of its training tokens")
    return vocabulary, replace(model_config, vocab_size=vocabulary.size)


# ----------------------------------------------------------------------------- state of a run


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict]
    best_val_loss: float
    steps: int
    tokens_per_second: float = field(default=float("nan"))
    interrupted: bool = False
    steps_run: int = 0  # optimizer steps taken by this call (0: the run was already finished)


@dataclass
class _RNGState:
    """Everything random in training, captured at an optimizer-step boundary. Kept on the CPU:
    ``Generator.set_state`` and ``torch.cuda.set_rng_state`` take only CPU tensors."""

    batch: torch.Tensor
    torch_cpu: torch.Tensor
    device: torch.Tensor | None = None  # this process's CUDA generator

    @classmethod
    def capture(cls, batch_generator: torch.Generator, device: torch.device) -> "_RNGState":
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(batch_generator.get_state(), torch.get_rng_state(), cuda)

    def restore(self, batch_generator: torch.Generator, device: torch.device) -> None:
        batch_generator.set_state(self.batch)
        torch.set_rng_state(self.torch_cpu)
        if self.device is not None and device.type == "cuda":
            torch.cuda.set_rng_state(self.device, device)


def _distributed(device_request: str) -> tuple[int, int, int]:
    """(rank, local_rank, world_size); starts the process group when run under torchrun, with
    the backend of the device this process will use (nccl for CUDA, gloo otherwise) and that
    device set first, so no rank creates a context on GPU 0 by mistake."""
    if "RANK" not in os.environ:
        return 0, 0, 1
    if not torch.distributed.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device, _ = choose_device(device_request)
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            torch.distributed.init_process_group(backend="nccl", device_id=torch.device("cuda", local_rank),
                                                 timeout=PROCESS_GROUP_TIMEOUT)
        else:
            torch.distributed.init_process_group(backend="gloo", timeout=PROCESS_GROUP_TIMEOUT)
    return torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), torch.distributed.get_world_size()


def describe_plan(model_config: GPTConfig, config: TrainConfig, world_size: int = 1) -> str:
    """What a run will do, in one line: optimizer steps, tokens, evaluations."""
    per_step = config.tokens_per_step(model_config.block_size, world_size)
    evaluations = config.max_steps // config.eval_interval + 1
    return (f"{config.max_steps:,} optimizer steps x {per_step:,} tokens = {config.max_steps * per_step / 1e6:,.1f}M "
            f"tokens, {evaluations:,} evaluations")


# Dense peak throughput of the 16-bit tensor cores each GPU trains with here, in TFLOP/s (the
# vendors' data sheets), and the share of it a small model like ours is assumed to reach. Times
# computed from them are estimates, not measurements: the real ones can be 2x either way.
GPU_PEAK_TFLOPS = {"T4 (fp16)": 65.0, "A100 (bf16)": 312.0, "H100 SXM (bf16)": 989.0}
ASSUMED_UTILIZATION = 0.25


def training_flops(model_config: GPTConfig, config: TrainConfig) -> float:
    """FLOPs of a whole run: 6 per parameter per token (2 forward, 4 backward; the tied head is
    one matrix, counted once) plus the attention scores (12 x n_layer x block_size x n_embd per
    token), times the tokens of ``max_steps`` optimizer steps; evaluation not included."""
    with torch.device("meta"):  # counts parameters without allocating them
        params = GPT(model_config).num_params()
    per_token = 6 * params + 12 * model_config.n_layer * model_config.block_size * model_config.n_embd
    return per_token * config.max_steps * config.tokens_per_step(model_config.block_size)


def estimated_gpu_seconds(model_config: GPTConfig, config: TrainConfig) -> dict[str, float]:
    """An estimate from FLOPs (not a measurement) of a run's time on each GPU of
    :data:`GPU_PEAK_TFLOPS`, at :data:`ASSUMED_UTILIZATION` of its peak."""
    flops = training_flops(model_config, config)
    return {gpu: flops / (tflops * 1e12 * ASSUMED_UTILIZATION) for gpu, tflops in GPU_PEAK_TFLOPS.items()}


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"14 min"``, ``"3.2 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def _load_for_resume(path: Path, model_config: GPTConfig, config: TrainConfig) -> dict:
    checkpoint = load_checkpoint(path)
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by another version of slm_helpers (format "
                              f"{checkpoint.get('format_version')}, this one reads {CHECKPOINT_VERSION}): start a new "
                              "run with --overwrite (overwrite=True)")
    check_resumable(checkpoint, path, model_config, config)
    return checkpoint


@dataclass
class _Run:
    """One training run's state and the files it writes: what the loop of :func:`train`
    advances, evaluates, saves and restores."""

    raw_model: GPT
    model_config: GPTConfig
    config: TrainConfig
    data_dir: Path
    out_dir: Path
    device: torch.device
    dtype: torch.dtype
    rank: int
    world_size: int
    say: Callable[..., None]
    reasons: tuple[str, str] = ("", "")  # why this device and this precision were chosen
    vocabulary: CompactVocabulary | None = None  # the dataset's compact vocabulary; saved with the weights
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf
    tokens_seen: int = 0  # counted step by step: a resumed run may have another number of processes

    def __post_init__(self) -> None:
        config = self.config
        self.model: torch.nn.Module = self.raw_model  # wrapped in DistributedDataParallel under torchrun
        self.optimizer = make_optimizer(self.raw_model, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.scaler = make_grad_scaler(self.device, self.dtype)
        self.batch_generator = torch.Generator().manual_seed(config.seed + self.rank)  # each process its batches
        self.tokens_per_step = config.tokens_per_step(self.model_config.block_size, self.world_size)
        self.eval_seconds: list[float] = []

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def evaluated_at_step(self) -> bool:
        return bool(self.history) and self.history[-1]["step"] == self.step

    def accumulate(self) -> float:
        """The first half of an optimizer step: the micro-batches' gradients. Returns the loss."""
        loss = accumulate_gradients(self.model, self.data_dir, self.config, self.model_config.block_size, self.device,
                                    self.dtype, self.scaler, self.batch_generator, self.world_size)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"The training loss became {loss} at step {self.step + 1:,} (learning rate {self.lr:.2e}). Try a "
                "lower learning_rate, a longer warmup_steps, keep grad_clip > 0, or dtype='float32'. The last good "
                f"checkpoint is in {self.out_dir}."
            )
        return loss

    def update(self) -> None:
        """The second half: unscale, clip, optimizer step, then the schedule, once per step."""
        optimizer_step(self.model, self.optimizer, self.scaler, self.config.grad_clip)
        self.scheduler.step()  # once per optimizer step, not per micro-batch (bug 3)
        self.step += 1
        self.tokens_seen += self.tokens_per_step

    # --------------------------------------------------------------- randomness and files

    def rng_states(self) -> list[dict]:
        """Every process's random state (gathered to all of them under torchrun)."""
        state = asdict(_RNGState.capture(self.batch_generator, self.device))
        if self.world_size == 1:
            return [state]
        gathered = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def save(self, rng_states: list[dict]) -> None:
        """``checkpoint.pt`` (everything needed to continue exactly) and ``history.json``."""
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_save({
            "format_version": CHECKPOINT_VERSION, "step": self.step, "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_states, "history": self.history,
            "best_val_loss": self.best_val_loss, "tokens_seen": self.tokens_seen,
            "model_config": asdict(self.model_config), "train_config": asdict(self.config), **self.extra,
        }, self.out_dir / CHECKPOINT_FILE)
        atomic_write_json(self.history, self.out_dir / HISTORY_FILE)

    def restore(self, checkpoint: dict, path: Path) -> None:
        """Continue from ``checkpoint``: weights, optimizer, schedule, scaler, history and each
        process's batch stream."""
        self.raw_model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler.is_enabled() and checkpoint["scaler"]:  # a CPU or bf16 run saved a disabled, empty scaler
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.step, self.history = checkpoint["step"], checkpoint["history"]
        self.best_val_loss, self.tokens_seen = checkpoint["best_val_loss"], checkpoint["tokens_seen"]
        saved_rng, world_size = checkpoint["rng"], self.world_size
        if self.rank < len(saved_rng):  # each process continues its own batch stream...
            _RNGState(**saved_rng[self.rank]).restore(self.batch_generator, self.device)
        if len(saved_rng) > world_size:  # ...and the streams of processes that are gone end here
            self.say(f"the checkpoint was written by {len(saved_rng)} processes, this run has {world_size}: it "
                     f"continues the batch streams of ranks 0-{world_size - 1}; the others end here")
        elif len(saved_rng) < world_size:
            self.say(f"the checkpoint was written by {len(saved_rng)} process(es), this run has {world_size}: ranks "
                     f"{len(saved_rng)}-{world_size - 1} start fresh batch streams (seed + rank)")
        self.say(f"resumed from {path} at step {self.step:,}")

    def evaluate(self) -> str:
        """Both splits' loss and a greedy sample, into the history; the best weights so far into
        ``best_model_params.pt``; then a checkpoint. Returns the line to print."""
        start = time.perf_counter()
        losses = estimate_loss(self.model, self.data_dir, self.config, self.model_config.block_size, self.device,
                               self.dtype, seed=self.config.seed + 1 + self.rank)
        record = dict(step=self.step, tokens=self.tokens_seen, lr=self.lr, train_loss=losses["train"],
                      val_loss=losses["validation"], sample=self.sample() if self.is_main else "")
        is_best = record["val_loss"] < self.best_val_loss
        if is_best and self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_save({"model_config": asdict(self.model_config), "model": self.raw_model.state_dict(),
                         "step": self.step, "val_loss": record["val_loss"], **self.extra},
                        self.out_dir / BEST_WEIGHTS_FILE)
        # Only once the files are written does the run count them: a failed save leaves it as it was.
        self.history.append(record)
        best_before, self.best_val_loss = self.best_val_loss, min(self.best_val_loss, record["val_loss"])
        try:
            self.save(self.rng_states())
        except BaseException:
            self.history.pop()
            self.best_val_loss = best_before
            raise
        self.eval_seconds.append(time.perf_counter() - start)
        return (f"step {self.step:>6,}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
                f"lr {record['lr']:.2e}" + ("  (best so far, saved)" if is_best else ""))

    def sample(self) -> str:
        return sample_text(self.raw_model, self.device, vocabulary=self.vocabulary)

    @property
    def extra(self) -> dict:
        """What every weights file carries besides the weights: the mapping of a compact vocabulary."""
        return {"vocabulary": self.vocabulary.to_dict() if self.vocabulary else None}

    def estimate_line(self, step_seconds: list[float]) -> str:
        """The time the rest of the run will take, from the steps and evaluations measured so far."""
        per_step = sum(step_seconds[1:]) / len(step_seconds[1:])  # the first step warms up: left out
        per_eval = sum(self.eval_seconds) / len(self.eval_seconds) if self.eval_seconds else 0.0
        evals_left = (self.config.max_steps - self.step) // self.config.eval_interval + 1
        total = per_step * (self.config.max_steps - self.step) + per_eval * evals_left
        return (f"measured here: {per_step:.2f} s per step, {per_eval:.1f} s per evaluation: about "
                f"{format_duration(total)} to step {self.config.max_steps:,} "
                f"({self.tokens_per_step / per_step:,.0f} tokens/s)")


def train(
    preset=None,
    *,
    model_config: GPTConfig | None = None,
    train_config: TrainConfig | None = None,
    data_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    log=print,
) -> TrainResult:
    """Train a GPT and write its best weights, checkpoint and history into ``out_dir``.

    Give a :class:`~slm_helpers.presets.Preset` (its model, training settings and folders;
    its dataset is prepared first if missing), or ``model_config``, ``train_config``,
    ``data_dir`` and ``out_dir`` directly; explicit arguments win over the preset's.
    ``resume=True`` continues from ``out_dir``'s checkpoint (with the same settings); an
    earlier run in ``out_dir`` is replaced only with ``overwrite=True``. ``stop_at_step``
    stops early, as an interruption would (after writing a checkpoint), which is how the
    resume demonstration and tests interrupt a run.
    """
    run, checkpoint = _start_run(preset, model_config, train_config, data_dir, out_dir, resume, overwrite, progress,
                                 log)
    if checkpoint is not None:
        run.restore(checkpoint, run.out_dir / CHECKPOINT_FILE)
    elif resume:
        run.say(f"no checkpoint in {run.out_dir}: starting from step 0")
    if run.world_size > 1:
        run.model = torch.nn.parallel.DistributedDataParallel(
            run.raw_model, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    _say_plan(run)

    config = run.config
    last_step = min(config.max_steps, stop_at_step) if stop_at_step is not None else config.max_steps
    bar = tqdm(total=config.max_steps, initial=run.step, desc="training", unit="step", dynamic_ncols=True,
               disable=not (progress and run.is_main), mininterval=1.0)

    def say(line: str) -> None:  # above the progress bar
        bar.clear()
        run.say(line)
        bar.refresh()

    step_seconds: list[float] = []  # of this call's optimizer steps, evaluations excluded
    interrupted = updating = False
    start_time, start_step = time.perf_counter(), run.step
    rng_at_step_start = None
    try:
        run.model.train()
        while run.step < last_step:
            if run.world_size == 1:  # for a checkpoint on KeyboardInterrupt mid-step
                rng_at_step_start = [asdict(_RNGState.capture(run.batch_generator, run.device))]
            if run.step % config.eval_interval == 0 and not run.evaluated_at_step():
                say(run.evaluate())
            step_start = time.perf_counter()
            loss = run.accumulate()
            updating = True  # from here until the step is counted, an interrupt keeps the last checkpoint
            run.update()
            updating = False
            step_seconds.append(time.perf_counter() - step_start)
            if len(step_seconds) == ESTIMATE_AFTER_STEPS and run.step < config.max_steps:
                say(run.estimate_line(step_seconds))
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{run.lr:.2e}", refresh=False)
        if run.step == config.max_steps and not run.evaluated_at_step():
            say(run.evaluate())
        elif run.step == last_step < config.max_steps:
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
            run.say(f"\ninterrupted at step {run.step:,} of {config.max_steps:,}: checkpoint saved; resume=True continues")
        else:
            run.say(f"\ninterrupted; the last checkpoint in {run.out_dir} is kept (resume=True continues from it)")
    finally:
        bar.close()
    steps_run, elapsed = run.step - start_step, time.perf_counter() - start_time
    tokens_per_second = steps_run * run.tokens_per_step / elapsed if steps_run else float("nan")
    return TrainResult(run.out_dir, run.history, run.best_val_loss, run.step, tokens_per_second, interrupted,
                       steps_run)


def _start_run(preset, model_config, train_config, data_dir, out_dir, resume, overwrite, progress, log,
               ) -> tuple[_Run, dict | None]:
    """Every check before any file is touched, then the dataset, the processes, the device and
    precision, and a fresh model, optimizer and schedule; also the checkpoint to resume from."""
    if preset is None and None in (model_config, train_config, data_dir, out_dir):
        raise ValueError("Give a preset (get_preset('ci')), or all of model_config, train_config, data_dir and out_dir.")
    model_config = model_config or preset.model
    config = train_config or preset.train
    out_dir = Path(out_dir or preset.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    check_out_dir(out_dir, resume, overwrite)
    checkpoint = _load_for_resume(checkpoint_path, model_config, config) if resume and checkpoint_path.is_file() else None
    if data_dir is None:  # the preset's dataset, prepared first if missing (saying so)
        data_dir = preset.prepare_data(progress=progress, log=log).path
    data_dir = Path(data_dir)
    check_dataset_fits(data_dir, model_config)
    rank, local_rank, world_size = _distributed(config.device)
    vocabulary, model_config = vocabulary_for_model(data_dir, model_config, log if rank == 0 else (lambda _: None))
    if checkpoint is not None:
        check_same_vocabulary(checkpoint, checkpoint_path, vocabulary, data_dir)
    device, device_reason = choose_device(config.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
    dtype, dtype_reason = choose_dtype(device, config.dtype)
    if overwrite and not resume and rank == 0:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
    if device.type == "cpu":
        keep_large_buffers_on_the_heap()
    torch.manual_seed(config.seed + rank)  # dropout; each process its own stream
    run = _Run(raw_model=GPT(model_config).to(device), model_config=model_config, config=config, data_dir=data_dir,
               out_dir=out_dir, device=device, dtype=dtype, rank=rank, world_size=world_size,
               say=log if rank == 0 else (lambda *a, **k: None), reasons=(device_reason, dtype_reason),
               vocabulary=vocabulary)
    return run, checkpoint


def _say_plan(run: _Run) -> None:
    """Where and how the run trains, and how much, before its first step."""
    config, world_size = run.config, run.world_size
    device_reason, dtype_reason = run.reasons
    processes = f" x {world_size} processes" if world_size > 1 else ""
    run.say(f"device: {run.device} ({device_reason}); autocast dtype: {str(run.dtype).removeprefix('torch.')} "
            f"({dtype_reason})" + (f"; {world_size} processes" if world_size > 1 else ""))
    run.say(f"{run.raw_model.num_params():,} parameters; {run.tokens_per_step:,} tokens per optimizer step "
            f"({config.batch_size} x {run.model_config.block_size} x {config.grad_accum_steps} micro-batches"
            f"{processes})")
    run.say(f"plan: {describe_plan(run.model_config, config, world_size)}; the time it takes here is measured over "
            f"its first {ESTIMATE_AFTER_STEPS} steps")


def ensure_trained(preset, log=print) -> list[dict]:
    """The history of ``preset``'s run, training it first (and saying what and for how long)
    if there is no finished run.

    Later notebooks call this so each runs on its own: with notebook 04 already run, it only
    loads ``history.json``. An interrupted run is resumed."""
    out_dir = preset.out_dir
    if _finished(out_dir, preset.train.max_steps):
        log(f"found the {preset.name} preset's finished run in {out_dir}")
        return load_history(out_dir)
    log(f"no finished {preset.name} run in {out_dir}: training it now ({describe_plan(preset.model, preset.train)}; "
        "notebook 04 explains each step)")
    info = preset.prepare_data(progress=False, log=log)
    return train(preset, data_dir=info.path, resume=True, log=log).history


def _finished(out_dir: Path, max_steps: int) -> bool:
    try:
        history = load_history(out_dir)
    except CheckpointError:
        return False
    return bool(history) and history[-1]["step"] >= max_steps and (out_dir / BEST_WEIGHTS_FILE).is_file()


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    from slm_helpers import cli

    parser = cli.ArgumentParser(prog="python -m slm_helpers.train", description="Train a GPT on prepared stories.")
    parser.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: $SLM_PRESET, else gpu with CUDA, else cpu)")
    parser.add_argument("--data-dir", default=None, help="a prepared dataset, used whatever made it (default: the preset's, prepared if missing)")
    parser.add_argument("--out-dir", default=None, help="where to write weights, checkpoint and history (default: runs/<preset>)")
    parser.add_argument("--max-iters", type=cli.positive_int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a run that --out-dir already holds")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--dtype", default=None, help="auto, bfloat16, float16, float32")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.resume and args.overwrite:
        parser.error("--resume continues a run and --overwrite replaces it: give one of them")

    overrides = {k: v for k, v in dict(max_steps=args.max_iters, device=args.device, dtype=args.dtype).items() if v is not None}
    if "max_steps" in overrides and overrides["max_steps"] <= get_preset(args.preset).train.warmup_steps:
        overrides["warmup_steps"] = overrides["max_steps"] // 10
        print(f"--max-iters {args.max_iters} is within the preset's warmup: warming up over {overrides['warmup_steps']} steps")
    preset = get_preset(args.preset, **overrides)
    choose_device(preset.train.device)  # a device this machine lacks is an error before anything is prepared
    out_dir = Path(args.out_dir) if args.out_dir else preset.out_dir
    check_out_dir(out_dir, args.resume, args.overwrite)
    data_dir = Path(args.data_dir) if args.data_dir else preset.data_dir
    rank, _, world_size = _distributed(preset.train.device)  # with a long timeout: rank 0 may prepare the data first
    try:
        if rank == 0:
            if args.data_dir:
                info = ensure_dataset(data_dir, preset.data_source, progress=not args.no_progress, **preset.data_options)
            else:
                info = preset.prepare_data(progress=not args.no_progress)
            data_dir = Path(info.path)
            print(f"training on {data_dir}: {info.splits['train'].tokens:,} train tokens from {info.source!r}")
        if world_size > 1:  # every process trains on the dataset rank 0 found or prepared
            shared = [str(data_dir)]
            torch.distributed.broadcast_object_list(shared, src=0)
            data_dir = Path(shared[0])
        result = train(preset, data_dir=data_dir, out_dir=out_dir, resume=args.resume, overwrite=args.overwrite,
                       progress=not args.no_progress)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank != 0:
        return cli.EXIT_INTERRUPTED if result.interrupted else 0
    if result.interrupted:
        print(f"interrupted at step {result.steps:,} of {preset.train.max_steps:,}; --resume continues", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    if result.steps_run == 0:
        print(f"already finished: {result.steps:,} of {preset.train.max_steps:,} steps, best validation loss "
              f"{result.best_val_loss:.4f}; files in {result.out_dir} (--overwrite starts a new run)")
        return 0
    print(f"done: {result.steps:,} steps, best validation loss {result.best_val_loss:.4f}, "
          f"{result.tokens_per_second:,.0f} tokens/s; files in {result.out_dir}")
    return 0


if __name__ == "__main__":
    from slm_helpers.cli import run

    sys.exit(run(main))
