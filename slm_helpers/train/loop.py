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
import os
import time
from dataclasses import asdict, replace

import torch
from tqdm.auto import tqdm  # one live bar in JupyterLab and Colab, text in a terminal

from slm_helpers import processes
from slm_helpers.checkpoint import RunFolder, check_resumable, load_model
from slm_helpers.device import (
    choose_device,
    choose_dtype,
    keep_large_buffers_on_the_heap,
)
from slm_helpers.errors import CheckpointError, SlmError, check_int
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig
from slm_helpers.plan import describe_plan, remaining_time_line
from slm_helpers.processes import RNGState
from slm_helpers.train.run import Run, TrainResult, describe_record
from slm_helpers.train.run_data import model_config_for, open_run_data

ESTIMATE_AFTER_STEPS = 4  # the expected time of a run is printed after this many of its steps


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
        try:
            return _loop(run, stop_at_step, progress)
        finally:
            run.model = run.gpt  # the DDP wrapper holds the process group: dropped before the group is left


def _loop(run: Run, stop_at_step: int | None, progress: bool) -> TrainResult:
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
    return TrainResult(run.folder.path, run.history, step, tokens_per_second, interrupted, steps_run,
                       model_config=run.gpt.config)


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
               log, init_from=None) -> tuple[Run, tuple[str, str]]:
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
    run = Run(gpt.to(device), config, data, folder, device, dtype, rank, world_size, say,
               init_from=str(init_from) if init_from is not None else None)
    if checkpoint is not None:
        run.restore(checkpoint)
        if rank == 0:
            folder.write_history(run.history)  # a damaged or missing history.json is written again
    return run, (device_reason, dtype_reason)


def _say_plan(run: Run, reasons: tuple[str, str]) -> None:
    """Where and how the run trains, and how much, before its first step."""
    config, world_size = run.config, run.world_size
    processes = f" x {world_size} processes" if world_size > 1 else ""
    run.say(f"device: {run.device} ({reasons[0]}); autocast dtype: {str(run.dtype).removeprefix('torch.')} "
            f"({reasons[1]})")
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
