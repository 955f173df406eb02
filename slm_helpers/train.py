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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm  # one live bar in JupyterLab and Colab, text in a terminal

from slm_helpers.checkpoint import (
    BEST_WEIGHTS_FILE, CHECKPOINT_FILE, CHECKPOINT_VERSION, HISTORY_FILE, RUN_FILES, CheckpointError, atomic_save,
    atomic_write_json, existing_run_files, load_checkpoint, load_history,
)
from slm_helpers.data import DataError, check_folder, ensure_dataset, get_batch, read_info, verify_dataset
from slm_helpers.device import (
    autocast_context, choose_device, choose_dtype, keep_large_buffers_on_the_heap, make_grad_scaler,
)
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig, learning_rates, make_optimizer, make_scheduler, optimizer_step
from slm_helpers.presets import PRESETS, get_preset

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
def sample_text(model: GPT, device, prompt: str = SAMPLE_PROMPT, tokens: int = SAMPLE_TOKENS) -> str:
    """What the model writes now: ``prompt`` continued greedily (deterministic, so the saved
    samples of a run show what training changed, not chance). Recorded at every evaluation;
    notebook 05 prints them from step 0 to the end."""
    from slm_helpers.tokenizer import get_tokenizer

    enc = get_tokenizer()
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
    if info.n_vocab > model_config.vocab_size:
        raise DataError(f"{data_dir} holds ids of a {info.n_vocab:,}-token vocabulary, more than the model's "
                        f"vocab_size={model_config.vocab_size:,}: give the model vocab_size >= {info.n_vocab:,}")


def _differences(saved: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    def same(a, b):
        return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    return [f"{k} {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
            for k in now if k not in ignore and not same(saved.get(k), now.get(k))]


def check_resumable(checkpoint: dict, path: Path, model_config: GPTConfig, config: TrainConfig) -> None:
    """Resume only the run the checkpoint holds: the same model and the same schedule. A longer
    ``max_steps``, say, would silently bend the learning rate back up from its floor."""
    differences = _differences(checkpoint["model_config"], asdict(model_config))
    differences += _differences(checkpoint["train_config"], asdict(config), ignore=RESUMABLE_CHANGES)
    if differences:
        raise CheckpointError(
            f"{path} was trained with other settings ({'; '.join(differences)}): resume with the same settings, or "
            "start a new run with --overwrite (overwrite=True) or another output folder"
        )


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
    ``data_dir`` and ``out_dir`` directly; explicit arguments win over the preset's. ``resume=True`` continues from ``out_dir``'s checkpoint
    (with the same settings); an earlier run in ``out_dir`` is replaced only with
    ``overwrite=True``. ``stop_at_step`` stops early, as an interruption would (after writing
    a checkpoint), which is how the resume demonstration and tests interrupt a run.
    """
    if preset is None and None in (model_config, train_config, data_dir, out_dir):
        raise ValueError("Give a preset (get_preset('ci')), or all of model_config, train_config, data_dir and out_dir.")
    model_config = model_config or preset.model
    config = train_config or preset.train
    out_dir = Path(out_dir or preset.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_FILE

    # Everything that can be wrong is found before any file is touched.
    check_out_dir(out_dir, resume, overwrite)
    checkpoint = _load_for_resume(checkpoint_path, model_config, config) if resume and checkpoint_path.is_file() else None
    if data_dir is None:  # the preset's dataset, prepared first if missing (saying so)
        data_dir = preset.prepare_data(progress=progress, log=log).path
    data_dir = Path(data_dir)
    check_dataset_fits(data_dir, model_config)
    rank, local_rank, world_size = _distributed(config.device)
    device, device_reason = choose_device(config.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
    dtype, dtype_reason = choose_dtype(device, config.dtype)
    is_main = rank == 0
    say = log if is_main else (lambda *a, **k: None)
    if overwrite and not resume and is_main:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
    if device.type == "cpu":
        keep_large_buffers_on_the_heap()

    torch.manual_seed(config.seed + rank)  # dropout; each process its own stream
    batch_generator = torch.Generator().manual_seed(config.seed + rank)  # each process its own batches
    model = GPT(model_config).to(device)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    scaler = make_grad_scaler(device, dtype)
    step, history, best_val_loss = 0, [], math.inf
    tokens_seen = 0  # counted step by step: a resumed run may have another number of processes

    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler.is_enabled() and checkpoint["scaler"]:  # a CPU or bf16 run saved a disabled, empty scaler
            scaler.load_state_dict(checkpoint["scaler"])
        step, history, best_val_loss = checkpoint["step"], checkpoint["history"], checkpoint["best_val_loss"]
        tokens_seen = checkpoint["tokens_seen"]
        saved_rng = checkpoint["rng"]
        if rank < len(saved_rng):  # each process continues its own batch stream...
            _RNGState(**saved_rng[rank]).restore(batch_generator, device)
        if len(saved_rng) > world_size:  # ...and the streams of processes that are gone end here
            say(f"the checkpoint was written by {len(saved_rng)} processes, this run has {world_size}: it continues "
                f"the batch streams of ranks 0-{world_size - 1}; the others end here")
        elif len(saved_rng) < world_size:
            say(f"the checkpoint was written by {len(saved_rng)} process(es), this run has {world_size}: ranks "
                f"{len(saved_rng)}-{world_size - 1} start fresh batch streams (seed + rank)")
        say(f"resumed from {checkpoint_path} at step {step:,}")
    elif resume:
        say(f"no checkpoint in {out_dir}: starting from step 0")

    raw_model = model
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    tokens_per_step = config.tokens_per_step(model_config.block_size, world_size)
    say(f"device: {device} ({device_reason}); autocast dtype: {str(dtype).removeprefix('torch.')} ({dtype_reason})"
        + (f"; {world_size} processes" if world_size > 1 else ""))
    say(f"{raw_model.num_params():,} parameters; {tokens_per_step:,} tokens per optimizer step "
        f"({config.batch_size} x {model_config.block_size} x {config.grad_accum_steps} micro-batches"
        + (f" x {world_size} processes)" if world_size > 1 else ")"))
    say(f"plan: {describe_plan(model_config, config, world_size)}; the time it takes here is measured over "
        f"its first {ESTIMATE_AFTER_STEPS} steps")
    step_seconds: list[float] = []  # of this call's optimizer steps, evaluations excluded
    eval_seconds: list[float] = []

    def say_estimate() -> None:
        per_step = sum(step_seconds[1:]) / len(step_seconds[1:])  # the first step warms up: left out
        per_eval = sum(eval_seconds) / len(eval_seconds) if eval_seconds else 0.0
        evals_left = (config.max_steps - step) // config.eval_interval + 1
        total = per_step * (config.max_steps - step) + per_eval * evals_left
        bar.clear()
        say(f"measured here: {per_step:.2f} s per step, {per_eval:.1f} s per evaluation: about "
            f"{format_duration(total)} to step {config.max_steps:,} ({tokens_per_step / per_step:,.0f} tokens/s)")
        bar.refresh()

    def all_rng_states() -> list[dict]:
        state = asdict(_RNGState.capture(batch_generator, device))
        if world_size == 1:
            return [state]
        gathered = [None] * world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def save(rng_states: list[dict]) -> None:
        if not is_main:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_save({
            "format_version": CHECKPOINT_VERSION, "step": step, "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng_states, "history": history, "best_val_loss": best_val_loss, "tokens_seen": tokens_seen,
            "model_config": asdict(model_config), "train_config": asdict(config),
        }, checkpoint_path)
        atomic_write_json(history, out_dir / HISTORY_FILE)

    def evaluate() -> None:
        nonlocal best_val_loss
        eval_start = time.perf_counter()
        losses = estimate_loss(model, data_dir, config, model_config.block_size, device, dtype, seed=config.seed + 1 + rank)
        record = dict(step=step, tokens=tokens_seen, lr=scheduler.get_last_lr()[0],
                      train_loss=losses["train"], val_loss=losses["validation"],
                      sample=sample_text(raw_model, device) if is_main else "")
        is_best = record["val_loss"] < best_val_loss
        if is_best and is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_save({"model_config": asdict(model_config), "model": raw_model.state_dict(),
                         "step": step, "val_loss": record["val_loss"]}, out_dir / BEST_WEIGHTS_FILE)
        # Only once the files are written does the run count them: a failed save leaves it as it was.
        history.append(record)
        best_val_loss = min(best_val_loss, record["val_loss"])
        try:
            save(all_rng_states())
        except BaseException:
            history.pop()
            raise
        eval_seconds.append(time.perf_counter() - eval_start)
        bar.clear()  # keep the progress bar below the log lines
        say(f"step {step:>6,}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
            f"lr {record['lr']:.2e}" + ("  (best so far, saved)" if is_best else ""))
        bar.refresh()

    last_step = min(config.max_steps, stop_at_step) if stop_at_step is not None else config.max_steps
    bar = tqdm(total=config.max_steps, initial=step, desc="training", unit="step", disable=not (progress and is_main),
               dynamic_ncols=True, mininterval=1.0)
    interrupted = updating = False
    start_time, start_step = time.perf_counter(), step
    rng_at_step_start = None
    try:
        model.train()
        while step < last_step:
            if world_size == 1:  # for a checkpoint on KeyboardInterrupt mid-step
                rng_at_step_start = [asdict(_RNGState.capture(batch_generator, device))]
            if step % config.eval_interval == 0 and not (history and history[-1]["step"] == step):
                evaluate()
            step_start = time.perf_counter()
            loss_value = accumulate_gradients(model, data_dir, config, model_config.block_size, device, dtype, scaler,
                                              batch_generator, world_size)
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"The training loss became {loss_value} at step {step + 1:,} (learning rate "
                    f"{scheduler.get_last_lr()[0]:.2e}). Try a lower learning_rate, a longer warmup_steps, "
                    f"keep grad_clip > 0, or dtype='float32'. The last good checkpoint is in {out_dir}."
                )
            updating = True
            optimizer_step(model, optimizer, scaler, config.grad_clip)
            scheduler.step()  # once per optimizer step, not per micro-batch (bug 3)
            step += 1
            tokens_seen += tokens_per_step
            updating = False
            step_seconds.append(time.perf_counter() - step_start)
            if len(step_seconds) == ESTIMATE_AFTER_STEPS and step < config.max_steps:
                say_estimate()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
        if step == config.max_steps and not (history and history[-1]["step"] == step):
            evaluate()
        elif step == last_step < config.max_steps:
            save(all_rng_states())
            interrupted = True
            say(f"stopped at step {step:,} of {config.max_steps:,}; resume=True continues from here")
    except KeyboardInterrupt:
        interrupted = True
        if world_size == 1 and not updating and rng_at_step_start is not None:
            # Parameters, optimizer and schedule are still those of the step's start; the batches
            # drawn since are rewound, so resuming repeats the unfinished step exactly.
            optimizer.zero_grad(set_to_none=True)
            save(rng_at_step_start)
            say(f"\ninterrupted at step {step:,} of {config.max_steps:,}: checkpoint saved; resume=True continues")
        else:
            say(f"\ninterrupted; the last checkpoint in {out_dir} is kept (resume=True continues from it)")
    finally:
        bar.close()
    elapsed = time.perf_counter() - start_time
    tokens_per_second = (step - start_step) * tokens_per_step / elapsed if step > start_step else float("nan")
    return TrainResult(out_dir, history, best_val_loss, step, tokens_per_second, interrupted, step - start_step)


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
