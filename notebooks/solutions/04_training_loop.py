"""Worked solutions to notebook 04's exercises (tests/test_exercises.py checks them)."""

import math
import tempfile

from slm_helpers.presets import get_preset
from slm_helpers.train import train


def exercise_1(step: int = 3_000, preset: str = "gpu") -> float:
    """The learning rate at an optimizer step, from the schedule's formula.

    Warmup: LinearLR multiplies the peak by a factor that grows linearly from 1/w at step 0 to
    1 at step w. Then cosine: half a cosine wave from the peak at step w down to the floor at
    max_steps."""
    cfg = get_preset(preset).train
    w, peak, floor = cfg.warmup_steps, cfg.learning_rate, cfg.min_lr
    if step < w:
        return peak * (1 / w + step * (1 - 1 / w) / w)
    progress = (step - w) / (cfg.max_steps - w)
    return floor + (peak - floor) * (1 + math.cos(math.pi * progress)) / 2


def exercise_2(preset: str = "ci") -> list[dict]:
    """The same run with a learning rate (and floor) ten times larger. Returns its history;
    compare its losses with the preset's own run in the notebook. Too large a step overshoots
    the valley the gradient points into: the loss falls slower, stalls higher, or jumps."""
    base = get_preset(preset).train
    hot = get_preset(preset, learning_rate=10 * base.learning_rate, min_lr=10 * base.min_lr)
    with tempfile.TemporaryDirectory() as out:
        return train(hot, out_dir=out, progress=False, log=lambda *args: None).history
