"""The training loop, written out by hand: no Trainer, nothing hidden.

One optimizer step =
  ``grad_accum_steps`` micro-batches, each: forward under autocast, loss / grad_accum_steps,
  backward (scaled by ``GradScaler`` when the dtype is fp16)
  -> unscale the gradients -> clip their norm -> optimizer step -> scheduler step.

The schedule is linear warmup then cosine decay down to ``min_lr``, counted in optimizer
steps. Every ``eval_interval`` steps the loss is averaged over ``eval_batches`` batches of
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

import argparse
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from slm_helpers.data import DataError, get_batch, prepare_dataset, read_info
from slm_helpers.model import GPT

BEST_WEIGHTS_FILE = "best_model_params.pt"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the defaults are the original run's, with its bugs fixed."""

    batch_size: int = 32  # sequences per micro-batch (per process under torchrun)
    grad_accum_steps: int = 32  # micro-batches per optimizer step
    max_steps: int = 20_000  # optimizer steps (not micro-batches: bug 3)
    warmup_steps: int = 1_000  # optimizer steps of linear warmup
    learning_rate: float = 1e-4  # peak
    min_lr: float = 1e-5  # floor of the cosine decay, below the peak (bug 1)
    weight_decay: float = 0.1  # on matrices only, not on biases and LayerNorm
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-9
    grad_clip: float = 0.5  # max gradient norm, applied to unscaled gradients (bug 2); 0 turns it off
    eval_interval: int = 500  # optimizer steps between evaluations
    eval_batches: int = 100  # batches per split per evaluation (bug 4: the original used 500 every 500 micro-steps)
    seed: int = 1337
    device: str = "auto"  # "auto", "cuda", "mps", "cpu" (or "cuda:1", ...)
    dtype: str = "auto"  # "auto", "bfloat16", "float16", "float32"

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum_steps", "max_steps", "eval_interval", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not 0 <= self.warmup_steps < self.max_steps:
            raise ValueError(f"warmup_steps must be in [0, max_steps={self.max_steps}), not {self.warmup_steps}")
        if not 0 <= self.min_lr < self.learning_rate:
            raise ValueError(
                f"min_lr={self.min_lr} must be below learning_rate={self.learning_rate}: a floor above the peak makes "
                "the cosine 'decay' raise the learning rate (the original run's bug 1). Try learning_rate / 10."
            )

    def tokens_per_step(self, block_size: int, world_size: int = 1) -> int:
        return self.batch_size * block_size * self.grad_accum_steps * world_size


# ----------------------------------------------------------------------------- device and precision


def choose_device(requested: str = "auto") -> tuple[torch.device, str]:
    """The device to train on and why: CUDA, then MPS (recent torch only), then the CPU."""
    if requested != "auto":
        return torch.device(requested), "requested"
    if torch.cuda.is_available():
        return torch.device("cuda"), f"CUDA is available ({torch.cuda.get_device_name()})"
    torch_version = tuple(int(p) for p in torch.__version__.split(".")[:2])
    if torch.backends.mps.is_available() and torch_version >= (2, 4):
        return torch.device("mps"), "Apple MPS is available and torch >= 2.4 (older versions gave wrong losses)"
    return torch.device("cpu"), "no GPU found"


def _cpu_has_native_bf16() -> bool:
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choose_dtype(device: torch.device, requested: str = "auto") -> tuple[torch.dtype, str]:
    """The autocast dtype for ``device`` and why (measured, not by habit)."""
    if requested != "auto":
        dtype = getattr(torch, requested, None)
        if not isinstance(dtype, torch.dtype) or dtype not in (torch.bfloat16, torch.float16, torch.float32):
            raise ValueError(f"dtype must be 'auto', 'bfloat16', 'float16' or 'float32', not {requested!r}")
        return dtype, "requested"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "this GPU computes bf16 natively: half the memory traffic, fp32's range, no GradScaler"
        return torch.float16, "this GPU lacks bf16 (e.g. a T4): fp16 autocast with GradScaler against underflow"
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16, "this CPU has native bf16 instructions"
    if device.type == "cpu":
        return torch.float32, "this CPU lacks native bf16: bf16 autocast measured ~30x slower than fp32 here"
    return torch.float32, f"{device.type}: fp32 is the safe choice"


def keep_large_buffers_on_the_heap() -> bool:
    """On Linux (glibc), let ``malloc`` reuse large freed blocks instead of returning them to
    the system at once.

    A training step on the CPU allocates buffers of ~100 MB (the logits: batch x block x
    50,257 floats). By default glibc maps each one fresh from the kernel and unmaps it when
    freed, so every step pays for zeroing those pages again; here that doubled the time of a
    ci-preset step (1,470 vs 2,700 tokens/s). Returns whether the setting was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))


def autocast_context(device: torch.device, dtype: torch.dtype):
    """``torch.autocast`` for low precision; a no-op context for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A GradScaler that is enabled only for fp16 on CUDA, where small gradients underflow."""
    return torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16 and device.type == "cuda"))


# ----------------------------------------------------------------------------- optimizer and schedule


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (linear weights, embeddings) only: decaying biases
    and LayerNorm gains towards zero only hurts."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.betas, eps=config.eps)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup from ~0 to the peak over ``warmup_steps``, then cosine down to ``min_lr``
    at ``max_steps``; stepped once per optimizer step."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    cosine = CosineAnnealingLR(optimizer, T_max=config.max_steps - config.warmup_steps, eta_min=config.min_lr)
    if config.warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1.0 / config.warmup_steps, end_factor=1.0, total_iters=config.warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[config.warmup_steps])


def learning_rates(config: TrainConfig, steps: int | None = None) -> list[float]:
    """The learning rate at each optimizer step of ``config``'s schedule (for plots)."""
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = make_scheduler(optimizer, config)
    rates = []
    for _ in range(steps or config.max_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def optimizer_step(model: torch.nn.Module, optimizer, scaler: torch.amp.GradScaler, grad_clip: float) -> torch.Tensor:
    """Unscale, clip, step, update the scaler, clear the gradients; in that order.

    With fp16, the backward pass ran on ``loss * scale``, so the gradients are ``scale`` times
    too big. They must be unscaled *before* clipping, or the clip threshold applies to scaled
    gradients and means nothing (the original run's bug 2). ``scaler.step`` skips the update
    when it finds inf/NaN gradients (the scale was too high) and ``scaler.update`` lowers the
    scale. Returns the gradient norm before clipping (``grad_clip <= 0``: no clipping).
    """
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return norm


# ----------------------------------------------------------------------------- evaluation


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
        for value in losses.values():
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.AVG)
    model.train(was_training)
    return {split: value.item() for split, value in losses.items()}


# ----------------------------------------------------------------------------- files


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def load_history(out_dir: str | os.PathLike) -> list[dict]:
    """The evaluation records of a run: step, tokens, lr, train_loss, val_loss."""
    path = Path(out_dir) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {HISTORY_FILE} in {out_dir}: train first (notebook 04 or python -m slm_helpers.train).")
    return json.loads(path.read_text())


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint written by :func:`train`, loaded with ``weights_only=True`` (no pickled code)."""
    return torch.load(path, map_location=map_location, weights_only=True)


# ----------------------------------------------------------------------------- the loop


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict]
    best_val_loss: float
    steps: int
    tokens_per_second: float = field(default=float("nan"))
    interrupted: bool = False


@dataclass
class _RNGState:
    """Everything random in training, captured at an optimizer-step boundary."""

    batch: torch.Tensor
    torch_cpu: torch.Tensor
    cuda: list = field(default_factory=list)

    @classmethod
    def capture(cls, batch_generator: torch.Generator) -> "_RNGState":
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return cls(batch_generator.get_state(), torch.get_rng_state(), cuda)

    def restore(self, batch_generator: torch.Generator) -> None:
        batch_generator.set_state(self.batch)
        torch.set_rng_state(self.torch_cpu)
        if self.cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.cuda)


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size); starts the process group when run under torchrun."""
    if "RANK" not in os.environ:
        return 0, 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), torch.distributed.get_world_size()


def train(
    preset=None,
    *,
    model_config=None,
    train_config: TrainConfig | None = None,
    data_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    log=print,
) -> TrainResult:
    """Train a GPT and write its best weights, checkpoint and history into ``out_dir``.

    Give a :class:`~slm_helpers.presets.Preset` (its model, training settings and folders),
    or ``model_config``, ``train_config``, ``data_dir`` and ``out_dir`` directly; explicit
    arguments win over the preset's. ``resume=True`` continues from ``out_dir``'s checkpoint.
    ``stop_at_step`` stops early, as an interruption would (after writing a checkpoint), which
    is how the resume demonstration and tests interrupt a run at a known point.
    """
    if preset is None and None in (model_config, train_config, data_dir, out_dir):
        raise ValueError("Give a preset (get_preset('ci')), or all of model_config, train_config, data_dir and out_dir.")
    model_config = model_config or preset.model
    config = train_config or preset.train
    data_dir = Path(data_dir or preset.data_dir)
    out_dir = Path(out_dir or preset.out_dir)

    rank, local_rank, world_size = _distributed()
    is_main = rank == 0
    say = log if is_main else (lambda *a, **k: None)
    device, device_reason = choose_device(config.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dtype, dtype_reason = choose_dtype(device, config.dtype)
    if device.type == "cpu":
        keep_large_buffers_on_the_heap()

    torch.manual_seed(config.seed + rank)  # dropout; each process its own stream
    batch_generator = torch.Generator().manual_seed(config.seed + rank)  # each process its own batches
    model = GPT(model_config).to(device)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    scaler = make_grad_scaler(device, dtype)
    step, history, best_val_loss = 0, [], math.inf

    checkpoint_path = out_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path, map_location=device)
        if checkpoint["model_config"] != asdict(model_config):
            raise ValueError(f"{checkpoint_path} holds a model of another configuration: {checkpoint['model_config']}")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        step, history, best_val_loss = checkpoint["step"], checkpoint["history"], checkpoint["best_val_loss"]
        rng = checkpoint["rng"][rank] if rank < len(checkpoint["rng"]) else checkpoint["rng"][0]
        _RNGState(**rng).restore(batch_generator)
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

    def all_rng_states() -> list[dict]:
        state = asdict(_RNGState.capture(batch_generator))
        if world_size == 1:
            return [state]
        gathered = [None] * world_size
        torch.distributed.all_gather_object(gathered, {k: v for k, v in state.items()})
        return gathered

    def save(rng_states: list[dict]) -> None:
        if not is_main:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        _atomic_save({
            "format_version": CHECKPOINT_VERSION, "step": step, "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng_states, "history": history, "best_val_loss": best_val_loss,
            "model_config": asdict(model_config), "train_config": asdict(config),
        }, checkpoint_path)
        _atomic_write_json(history, out_dir / HISTORY_FILE)

    def evaluate() -> None:
        nonlocal best_val_loss
        losses = estimate_loss(model, data_dir, config, model_config.block_size, device, dtype, seed=config.seed + 1 + rank)
        record = dict(step=step, tokens=step * tokens_per_step, lr=scheduler.get_last_lr()[0],
                      train_loss=losses["train"], val_loss=losses["validation"])
        history.append(record)
        if record["val_loss"] < best_val_loss:
            best_val_loss = record["val_loss"]
            if is_main:
                out_dir.mkdir(parents=True, exist_ok=True)
                _atomic_save({"model_config": asdict(model_config), "model": raw_model.state_dict(),
                              "step": step, "val_loss": best_val_loss}, out_dir / BEST_WEIGHTS_FILE)
        save(all_rng_states())
        note = "  (best so far, saved)" if record["val_loss"] == best_val_loss else ""
        bar.clear()  # keep the progress bar below the log lines
        say(f"step {step:>6,}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
            f"lr {record['lr']:.2e}{note}")
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
                rng_at_step_start = [asdict(_RNGState.capture(batch_generator))]
            if step % config.eval_interval == 0 and not (history and history[-1]["step"] == step):
                evaluate()
            step_loss = torch.zeros((), device=device)
            for micro in range(config.grad_accum_steps):
                x, y = get_batch(data_dir, "train", config.batch_size, model_config.block_size, device, batch_generator)
                # Under DDP, average gradients across processes only on the last micro-batch.
                last_micro = micro == config.grad_accum_steps - 1
                with contextlib.nullcontext() if last_micro or world_size == 1 else model.no_sync():
                    with autocast_context(device, dtype):
                        _, loss = model(x, y)
                        loss = loss / config.grad_accum_steps  # the mean over all micro-batches, not their sum
                    scaler.scale(loss).backward()
                step_loss += loss.detach()
            loss_value = step_loss.item()
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
            updating = False
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
            say(f"\ninterrupted: checkpoint saved at step {step:,}; resume=True continues from here")
        else:
            say(f"\ninterrupted; the last checkpoint in {out_dir} is kept (resume=True continues from it)")
    finally:
        bar.close()
    elapsed = time.perf_counter() - start_time
    tokens_per_second = (step - start_step) * tokens_per_step / elapsed if step > start_step else float("nan")
    return TrainResult(out_dir, history, best_val_loss, step, tokens_per_second, interrupted)


def ensure_trained(preset, log=print) -> list[dict]:
    """The history of ``preset``'s run, training it first (and saying so) if there is none.

    Later notebooks call this so each runs on its own: with notebook 04 already run, it only
    loads ``history.json``."""

    history_path = preset.out_dir / HISTORY_FILE
    if history_path.is_file() and (preset.out_dir / BEST_WEIGHTS_FILE).is_file():
        log(f"found the {preset.name} preset's run in {preset.out_dir.name}/")
        return load_history(preset.out_dir)
    log(f"no trained {preset.name} run in {preset.out_dir.name}/: training it now (notebook 04 explains each step)")
    prepare_dataset(preset.data_source, preset.data_dir, progress=False, **preset.data_options)
    return train(preset, log=log).history


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    from slm_helpers.presets import PRESETS, get_preset  # presets imports this module

    parser = argparse.ArgumentParser(prog="python -m slm_helpers.train", description="Train a GPT on prepared stories.")
    parser.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: $SLM_PRESET, else gpu with CUDA, else cpu)")
    parser.add_argument("--data-dir", default=None, help="prepared dataset (default: the preset's; prepared if missing)")
    parser.add_argument("--out-dir", default=None, help="where to write weights, checkpoint and history (default: runs/<preset>)")
    parser.add_argument("--max-iters", type=int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir")
    parser.add_argument("--device", default=None, help="auto, cuda, mps, cpu")
    parser.add_argument("--dtype", default=None, help="auto, bfloat16, float16, float32")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    rank, _, world_size = _distributed()
    try:
        overrides = {k: v for k, v in dict(max_steps=args.max_iters, device=args.device, dtype=args.dtype).items() if v is not None}
        if "max_steps" in overrides and overrides["max_steps"] <= get_preset(args.preset).train.warmup_steps:
            overrides["warmup_steps"] = overrides["max_steps"] // 10
            print(f"--max-iters {args.max_iters} is within the preset's warmup: warming up over {overrides['warmup_steps']} steps")
        preset = get_preset(args.preset, **overrides)
        data_dir = Path(args.data_dir) if args.data_dir else preset.data_dir
        if rank == 0:
            if read_info(data_dir) is None:
                print(f"no dataset in {data_dir}: preparing it from {preset.data_source!r}")
            prepare_dataset(preset.data_source, data_dir, progress=not args.no_progress, **preset.data_options)
        if world_size > 1:
            torch.distributed.barrier()
        result = train(preset, data_dir=data_dir, out_dir=args.out_dir, resume=args.resume, progress=not args.no_progress)
    except (ValueError, DataError, TrainingDiverged, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0:
        print(f"done: {result.steps:,} steps, best validation loss {result.best_val_loss:.4f}, "
              f"{result.tokens_per_second:,.0f} tokens/s; files in {result.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
