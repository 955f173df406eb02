"""Measuring speed: where a training step's time goes, and what a change buys (notebook 07).

The rule of the chapter: measure, explain, change one thing, measure again. Timings on a
shared machine are noisy, so everything compared is timed in alternating rounds in one
process (both sides see the same load) and the median round is kept.

* :func:`~slm_helpers.model.flops_per_token`: the arithmetic, per part of the model;
* :func:`time_pieces`: the same parts timed on their own (forward and backward);
* :class:`TrainingStep`: one optimizer step exactly as :func:`slm_helpers.train.train` takes
  it, for any model size, vocabulary, precision, or with ``torch.compile``;
* :func:`time_alternately`: seconds per call of several functions, side by side;
* :func:`step_and_evaluation_seconds` and :func:`steps_that_fit`: how many steps of a run fit
  a budget of seconds (the tuning and time-to-quality benchmarks);
* :func:`loss_against_time`: validation loss against wall-clock seconds of training;
  :func:`seconds_to_reach`: when such a curve first reaches a figure;
* :func:`generation_speeds`: tokens/s of generation up to a context length, with and without
  the KV cache; :func:`positions_computed`: the work each does, counted.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from slm_helpers.device import autocast_context, keep_large_buffers_on_the_heap, make_grad_scaler
from slm_helpers.errors import SlmError, check_int
from slm_helpers.evaluate import batches_of, estimate_loss
from slm_helpers.generate import generate_ids
from slm_helpers.model import GPT, PARTS, GPTConfig, flops_per_token  # noqa: F401 - counted beside the model
from slm_helpers.optim import TrainConfig, make_optimizer, optimizer_step
from slm_helpers.train import accumulate_gradients


def _seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def time_alternately(fns: dict[str, Callable[[], object]], rounds: int = 3, calls: int = 1,
                     warmup: int = 1) -> dict[str, float]:
    """Seconds per call of each function: ``warmup`` calls each first, then ``rounds`` rounds
    that call each function ``calls`` times in turn; the median round of each is kept."""
    check_int("rounds", rounds)
    check_int("calls", calls)
    check_int("warmup", warmup, 0)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            seconds[name].append(_seconds_per_call(fn, calls))
    return {name: statistics.median(values) for name, values in seconds.items()}


def time_pieces(config: GPTConfig, batch_size: int, rounds: int = 3, seed: int = 0) -> dict[str, float]:
    """Seconds of each part of :data:`PARTS` in one micro-batch of ``batch_size`` sequences:
    each part's forward and backward on its own (on inputs of the shape it meets in the
    model), the optimizer's step over all the weights. They add up to about a whole step."""
    keep_large_buffers_on_the_heap()  # as train() does on a CPU
    torch.manual_seed(seed)
    model = GPT(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B, T, C = batch_size, config.block_size, config.n_embd
    idx = torch.randint(config.vocab_size, (B, T))
    hidden = torch.randn(B, T, C, requires_grad=True)
    blocks = model.transformer.h

    def embeddings():
        model.embed(idx).sum().backward()

    def attention():
        sum(block.attn(block.ln_1(hidden)).sum() for block in blocks).backward()

    def mlp():
        sum(block.mlp(block.ln_2(hidden)).sum() for block in blocks).backward()

    def head():
        logits = model.lm_head(model.transformer.ln_f(hidden))
        F.cross_entropy(logits.view(-1, logits.size(-1)), idx.view(-1)).backward()

    for p in model.parameters():  # the optimizer steps with gradients of the right shapes
        p.grad = torch.randn_like(p)
    pieces = dict(zip(PARTS, (embeddings, attention, mlp, head, optimizer.step)))
    return time_alternately(pieces, rounds=rounds)


class TrainingStep:
    """Call it to take one optimizer step, as :func:`slm_helpers.train.train` does
    (micro-batches under autocast in ``dtype``, then unscale, clip and AdamW), on the CPU;
    it returns the step's loss. ``compile=True`` runs the model through ``torch.compile``,
    so the first call includes the compilation."""

    def __init__(self, model_config: GPTConfig, train_config: TrainConfig, data_dir: str | Path,
                 dtype: torch.dtype = torch.float32, compile: bool = False, seed: int = 0):
        keep_large_buffers_on_the_heap()  # as train() does on a CPU
        torch.manual_seed(seed)
        self.model_config, self.config, self.dtype = model_config, train_config, dtype
        self.data = batches_of(data_dir)
        self.device = torch.device("cpu")
        self.model = GPT(model_config).train()
        self.optimizer = make_optimizer(self.model, train_config)
        self.scaler = make_grad_scaler(self.device, dtype)
        self.generator = torch.Generator().manual_seed(seed)
        self.forward = torch.compile(self.model) if compile else self.model

    def __call__(self) -> float:
        loss = accumulate_gradients(self.forward, self.data, self.config, self.model_config.block_size,
                                    self.device, self.dtype, self.scaler, self.generator)
        optimizer_step(self.model, self.optimizer, self.scaler, self.config.grad_clip)
        return loss

    def validation_loss(self) -> float:
        return estimate_loss(self.model, self.data, self.config, self.model_config.block_size, self.device,
                             self.dtype, seed=self.config.seed + 1)["validation"]


def step_and_evaluation_seconds(runs: dict[str, tuple], rounds: int = 4, calls: int = 2,
                                dtype: torch.dtype = torch.float32) -> dict[str, dict[str, float]]:
    """This machine's seconds per optimizer step and per evaluation (both splits) of each run of
    ``runs`` (name -> ``(model_config, train_config, data)``), with the real training step: the
    runs' steps timed in turn (:func:`time_alternately`, ``rounds`` rounds of ``calls`` steps,
    the median round), so that a change in the machine's pace falls on all of them alike."""
    steps = {name: TrainingStep(model, train, data, dtype) for name, (model, train, data) in runs.items()}
    per_step = time_alternately(steps, rounds=rounds, calls=calls)
    per_eval = time_alternately({name: step.validation_loss for name, step in steps.items()}, rounds=1, warmup=0)
    return {name: dict(seconds_per_step=per_step[name], seconds_per_evaluation=2 * per_eval[name]) for name in runs}


def projected_seconds(steps: int, timing: dict[str, float], evaluations: int) -> float:
    """The seconds at ``timing`` (:func:`step_and_evaluation_seconds`) of a run of ``steps``
    that evaluates ``evaluations`` times in between, plus at step 0 and at its last step."""
    return steps * timing["seconds_per_step"] + (evaluations + 2) * timing["seconds_per_evaluation"]


def steps_that_fit(seconds: float, timing: dict[str, float], evaluations: int) -> int:
    """The most steps whose :func:`projected_seconds` fit ``seconds``: at least 10."""
    spent = projected_seconds(0, timing, evaluations)
    return max(10, int((seconds - spent) / timing["seconds_per_step"]))


def fitted(config: TrainConfig, steps: int, evaluations: int, **changes) -> TrainConfig:
    """``config`` for a run of ``steps`` (as :func:`steps_that_fit` gives them): the schedule
    fitted to them (a twentieth of warmup) and ``evaluations`` evaluations evenly spaced."""
    return replace(config, max_steps=steps, warmup_steps=max(1, steps // 20),
                   eval_interval=max(1, steps // evaluations), **changes)


def seconds_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """The first time a curve of ``(seconds, figure)`` points, in the order of its seconds,
    reaches ``target`` or below, read on the straight line between the two evaluations it falls
    between; None if it never does. A run is scored only at its evaluations: the line between
    them is the honest guess of when it got there, the later evaluation's time an upper bound."""
    for i, (seconds, figure) in enumerate(curve):
        if figure <= target:
            if i == 0:
                return float(seconds)
            before, earlier = curve[i - 1][1], curve[i - 1][0]
            return earlier + (seconds - earlier) * (before - target) / (before - figure)
    return None


def loss_against_time(model_config: GPTConfig, train_config: TrainConfig, data_dir: str | Path, seconds: float,
                      evaluations: int = 6, dtype: torch.dtype = torch.float32) -> list[dict]:
    """Train for ``seconds`` of wall-clock time (evaluation not counted) and return the
    validation loss at ``evaluations`` evenly spaced times: ``{"seconds", "step", "val_loss"}``.
    The learning rate warms up, then stays at its peak: a run cut by the clock has no known
    end for a schedule to decay towards."""
    step = TrainingStep(model_config, train_config, data_dir, dtype)
    warmup = max(train_config.warmup_steps, 1)
    history = [{"seconds": 0.0, "step": 0, "val_loss": step.validation_loss()}]
    peaks = [group["lr"] for group in step.optimizer.param_groups]  # each group's own (Muon's, the embedding's)
    trained, steps = 0.0, 0
    for evaluation in range(1, evaluations + 1):
        while trained < seconds * evaluation / evaluations:
            for group, peak in zip(step.optimizer.param_groups, peaks):
                group["lr"] = peak * min(1.0, (steps + 1) / warmup)
            start = time.perf_counter()
            loss = step()
            trained += time.perf_counter() - start
            steps += 1
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at step {steps}: lower the learning rate")
        history.append({"seconds": trained, "step": steps, "val_loss": step.validation_loss()})
    return history


@torch.inference_mode()
def generation_speeds(model: GPT, context: int, rounds: int = 3, prompt_tokens: int = 4) -> dict[str, float]:
    """Tokens per second of greedy generation from a ``prompt_tokens`` prompt until the
    sequence is ``context`` tokens long, with the KV cache (``"cache"``) and without it
    (``"no cache"``), measured in alternating rounds."""
    if not prompt_tokens < context <= model.config.block_size:
        raise SlmError(f"context must be in ({prompt_tokens}, {model.config.block_size}], not {context}")
    prompt = list(range(prompt_tokens))
    new = context - prompt_tokens

    def generate(use_kv_cache: bool) -> Callable[[], None]:
        def run() -> None:
            for _ in generate_ids(model, prompt, new, temperature=0, use_kv_cache=use_kv_cache):
                pass
        return run

    seconds = time_alternately({"cache": generate(True), "no cache": generate(False)}, rounds=rounds)
    return {name: new / s for name, s in seconds.items()}


def positions_computed(context: int, use_kv_cache: bool, prompt_tokens: int = 4) -> int:
    """How many positions the model runs through to generate up to ``context`` tokens: with
    the cache, the prompt once and then one per new token; without it, the whole sequence
    again for every new token (about context^2 / 2)."""
    if not context > prompt_tokens >= 1:
        raise SlmError(f"context must be larger than prompt_tokens ({prompt_tokens}), not {context}")
    if use_kv_cache:
        return context - 1  # the prompt, then every new token but the last (it is only sampled)
    return sum(range(prompt_tokens, context))


def autocast_matmul_seconds(dtype: torch.dtype, size: int = 512, calls: int = 20) -> float:
    """Seconds per ``size x size`` matrix product under CPU autocast in ``dtype``: the
    operation that decides whether bf16 is fast on this CPU."""
    named = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    dtype = named.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if dtype not in named.values():
        raise SlmError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16 (or their names), not {dtype!r}")
    a, b = torch.randn(size, size), torch.randn(size, size)

    def matmul():
        with autocast_context(torch.device("cpu"), dtype):
            return a @ b

    return time_alternately({"matmul": matmul}, rounds=3, calls=calls)["matmul"]
