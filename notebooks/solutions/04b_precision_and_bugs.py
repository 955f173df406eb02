"""Worked solutions to notebook 04b's exercises (tests/test_exercises.py checks them)."""

import math

import torch


def exercise_1(grad_clip: float = 0.5):
    """Unscale first, so the clip sees the real gradients; `scaler.step` skips the update when a
    gradient is inf or NaN (the scale was too high) and `scaler.update` then lowers the scale."""

    def step(model, optimizer, scaler, grad_clip: float):
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return norm

    return step


def exercise_2(preset: str = "gpu"):
    """Two splits of `eval_batches` forward passes, against `eval_interval x grad_accum`
    micro-batches of forward and backward (3 forward passes' worth each). The original:
    2 x 500 / (3 x 500 x 1) = 0.67, two thirds of its training compute. The gpu preset:
    2 x 50 / (3 x 250 x 4) = 3.3%. Returns the function and the two shares."""

    def eval_share(eval_batches: int, eval_interval: int, grad_accum: int) -> float:
        return 2 * eval_batches / (3 * eval_interval * grad_accum)

    from slm_helpers.presets import get_preset

    config = get_preset(preset).train
    return (eval_share, eval_share(500, 500, 1),
            eval_share(config.eval_batches, config.eval_interval, config.grad_accum_steps))
