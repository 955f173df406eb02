"""Checks of notebook 04b's exercises (precision and bugs)."""

from __future__ import annotations

import math

import torch

from slm_helpers.exercises.registry import exercise


@exercise("04b.1")
def _unscale_clip_step(answer, grad_clip: float):
    """Runs the learner's step and the right order on the same model, gradients and scaler
    state; the weights they leave must match, and so must the returned norm. A step that
    clips before unscaling leaves other weights (the clip saw scaled gradients)."""
    from slm_helpers.optim import optimizer_step

    def run(step_function):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
        scaler.scale(model(x).square().sum()).backward()
        norm = step_function(model, optimizer, scaler, grad_clip)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), norm, model

    weights, norm, model = run(answer)
    right_weights, right_norm, _ = run(optimizer_step)
    if not torch.allclose(weights, right_weights, atol=1e-6):
        return False, ("the weights differ from unscale, clip, step: call scaler.unscale_(optimizer) first, then "
                       "clip_grad_norm_, then scaler.step(optimizer) and scaler.update()")
    if norm is None or not math.isclose(float(norm), float(right_norm), rel_tol=1e-5):
        return False, f"return the gradient norm before clipping ({float(right_norm):.4f}), as clip_grad_norm_ does"
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
        return False, "clear the gradients at the end (optimizer.zero_grad(set_to_none=True))"
    return True, ""


@exercise("04b.2")
def _evaluation_share(answer, preset: str):
    from slm_helpers.presets import get_preset

    config = get_preset(preset).train
    cases = [(500, 500, 1), (config.eval_batches, config.eval_interval, config.grad_accum_steps), (10, 100, 4),
             (1, 1, 1)]
    for eval_batches, eval_interval, grad_accum in cases:
        expected = 2 * eval_batches / (3 * eval_interval * grad_accum)
        got = float(answer(eval_batches, eval_interval, grad_accum))
        # A share is a ratio of counts: exact up to floating-point rounding.
        if not math.isclose(got, expected, rel_tol=1e-9):
            return False, (f"eval_share({eval_batches}, {eval_interval}, {grad_accum}) should be {expected:.4g}: two "
                           "splits of eval_batches forward passes (1 each), over eval_interval x grad_accum "
                           "micro-batches of forward and backward (3 each)")
    return True, ""
