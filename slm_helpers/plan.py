"""What a run will do and how long it will take, said before it starts (notebook 04).

A run prints its plan (optimizer steps, tokens, evaluations) before its first step, and after
a few steps the time it measured and what that makes for the whole run. For GPUs, which this
project could not measure, times are **estimates from FLOPs**: the model's FLOPs per token
(:func:`slm_helpers.model.flops_per_token`) times the tokens, at an assumed share of each
GPU's peak 16-bit throughput. Real runs can be 2x either way.
"""

from __future__ import annotations

from slm_helpers.model import GPTConfig, flops_per_token
from slm_helpers.optim import TrainConfig

# Dense peak throughput of the 16-bit tensor cores each GPU trains with here, in TFLOP/s (the
# vendors' data sheets), and the share of it a small model like ours is assumed to reach.
GPU_PEAK_TFLOPS = {"T4 (fp16)": 65.0, "A100 (bf16)": 312.0, "H100 SXM (bf16)": 989.0}
ASSUMED_UTILIZATION = 0.25


def describe_plan(model_config: GPTConfig, config: TrainConfig, world_size: int = 1) -> str:
    """What a run will do, in one line: optimizer steps, tokens, evaluations."""
    per_step = config.tokens_per_step(model_config.block_size, world_size)
    evaluations = config.max_steps // config.eval_interval + 1 + (config.max_steps % config.eval_interval > 0)
    return (f"{config.max_steps:,} optimizer steps x {per_step:,} tokens = {format_count(config.max_steps * per_step)} "
            f"tokens, {evaluations:,} evaluations")


def format_count(n: float) -> str:
    """``"41K"``, ``"1.4M"``, ``"82M"``, ``"492M"``: a count rounded to what matters."""
    if n < 1_000:
        return f"{n:.0f}"
    if n < 1e6:
        return f"{n / 1e3:.0f}K"
    return f"{n / 1e6:.1f}M" if n < 1e7 else f"{n / 1e6:.0f}M"


def training_flops(model_config: GPTConfig, config: TrainConfig) -> float:
    """FLOPs of a whole run: the model's training FLOPs per token times the tokens of
    ``max_steps`` optimizer steps; evaluation not included."""
    per_token = sum(flops_per_token(model_config).values())
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


def remaining_time_line(step: int, max_steps: int, eval_interval: int, step_seconds: list[float],
                        eval_seconds: list[float], tokens_per_step: int) -> str:
    """The time the rest of a run will take, from the steps and evaluations measured so far
    (the first step warms up, so it is left out)."""
    per_step = sum(step_seconds[1:]) / len(step_seconds[1:])
    per_eval = sum(eval_seconds) / len(eval_seconds) if eval_seconds else 0.0
    evals_left = (max_steps - step) // eval_interval + 1
    total = per_step * (max_steps - step) + per_eval * evals_left
    return (f"measured here: {per_step:.2f} s per step, {per_eval:.1f} s per evaluation: about "
            f"{format_duration(total)} to step {max_steps:,} ({tokens_per_step / per_step:,.0f} tokens/s)")
