"""Checks of notebook 04b's exercises (precision and bugs)."""

from __future__ import annotations

import math

import torch

from slm_helpers.exercises.registry import exercise


@exercise("04b.1")
def _unscale_clip_step(answer, grad_clip: float):
    """Runs the learner's step and the right order on the same model, gradients and scaler
    state, twice. With finite gradients the weights they leave must match, and so must the
    returned norm (a step that clips before unscaling leaves other weights: the clip saw scaled
    gradients). With one gradient made inf (fp16's overflow when the scale is too high) the
    weights must be left as they were (scaler.step skips the step; optimizer.step() would apply
    it) and the scale must fall as scaler.update() lowers it (1024 to 512): neither mistake shows
    while the gradients are finite."""
    from slm_helpers.optim import optimizer_step

    init_scale = 1024.0

    def run(step_function, overflow: bool):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
        scaler.scale(model(x).square().sum()).backward()
        if overflow:  # as fp16 overflows when the scale is too high: the step must be skipped
            model[0].weight.grad[0, 0] = float("inf")
        norm = step_function(model, optimizer, scaler, grad_clip)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), norm, model, scaler.get_scale()

    weights, norm, model, _ = run(answer, overflow=False)
    right_weights, right_norm, _, _ = run(optimizer_step, overflow=False)
    if not torch.allclose(weights, right_weights, atol=1e-6):
        return False, ("the weights differ from unscale, clip, step: call scaler.unscale_(optimizer) first, then "
                       "clip_grad_norm_, then scaler.step(optimizer) and scaler.update()")
    if norm is None or not math.isclose(float(norm), float(right_norm), rel_tol=1e-5):
        return False, f"return the gradient norm before clipping ({float(right_norm):.4f}), as clip_grad_norm_ does"
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
        return False, "clear the gradients at the end (optimizer.zero_grad(set_to_none=True))"
    weights, _, _, scale = run(answer, overflow=True)
    right_weights, _, _, right_scale = run(optimizer_step, overflow=True)
    if not torch.equal(weights, right_weights):  # NaN never equals: a step applied with an inf gradient
        return False, ("with an inf gradient (an fp16 overflow) the step must be skipped and the weights left as they "
                       "were: step with scaler.step(optimizer), which skips it, not optimizer.step()")
    if scale != right_scale:
        return False, (f"after an inf gradient the scale should fall from {init_scale:g} to {right_scale:g}, but it "
                       f"is {scale:g}: call scaler.update() after scaler.step(optimizer)")
    return True, ""


@exercise("04b.2")
def _evaluation_share(answer, preset: str):
    """Both parts: the function eval_share, checked exactly on several cases, and what it gives
    for the original (500 batches every 500 micro-batches of one step each) and for ``preset``,
    as fractions within 2% (0.67 and 0.033 for the gpu preset)."""
    from slm_helpers.presets import get_preset

    if callable(answer) or not isinstance(answer, (tuple, list)) or len(answer) != 3:
        return False, (f"give (eval_share, what it gives for the original, what it gives for the {preset} preset): "
                       "the function and both numbers")
    eval_share, original_share, preset_share = answer
    config = get_preset(preset).train
    ours = (config.eval_batches, config.eval_interval, config.grad_accum_steps)
    for eval_batches, eval_interval, grad_accum in [(500, 500, 1), ours, (10, 100, 4), (1, 1, 1)]:
        expected = 2 * eval_batches / (3 * eval_interval * grad_accum)
        got = float(eval_share(eval_batches, eval_interval, grad_accum))
        # A share is a ratio of counts: exact up to floating-point rounding.
        if not math.isclose(got, expected, rel_tol=1e-9):
            return False, (f"eval_share({eval_batches}, {eval_interval}, {grad_accum}) should be {expected:.4g}: two "
                           "splits of eval_batches forward passes (1 each), over eval_interval x grad_accum "
                           "micro-batches of forward and backward (3 each)")
    for what, share, (eval_batches, eval_interval, grad_accum) in (("the original", original_share, (500, 500, 1)),
                                                                  (f"the {preset} preset", preset_share, ours)):
        expected = 2 * eval_batches / (3 * eval_interval * grad_accum)
        if share is None or not math.isclose(float(share), expected, rel_tol=0.02):
            return False, (f"eval_share is right; now the share for {what} (eval_share({eval_batches}, "
                           f"{eval_interval}, {grad_accum})), as a fraction (a half is 0.5, not 50), not {share!r}")
    return True, ""
