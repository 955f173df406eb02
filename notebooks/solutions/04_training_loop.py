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
    """The same run with a learning rate (and floor) ten times larger. Returns its history.

    Measured on the `ci` preset (validation loss at steps 0, 50, 100, 150, 200; another CPU's
    last bits move the later figures in their second decimal):
        1x  (peak 1e-2): 6.49, 2.39, 1.47, 0.87, 0.70 (notebook 04's saved run); it writes "Once upon a time, there
        was a happy boy named Dot. ..."
        10x (peak 1e-1): 6.49, 5.15, 4.93, 4.75, 4.68; it writes 'Once upon a time. " a time. " a'
    The `ci` preset's rate is already high (a small model learns fast with large steps), and
    ten times it is too much: each AdamW update moves every weight by about the learning
    rate, whatever its gradient, so at 0.1 the weights overshoot any good region at every
    step. The loss stalls near the unigram table's (notebook 05): the model keeps only which
    tokens are common, and writes the most common ones. Clipping does not help, since it
    limits the gradient, not AdamW's step; warmup only delays it. Three times the rate
    (3e-2) already ends at 2.5, against 0.70. The best learning rate is found by trying, per model."""
    base = get_preset(preset).train
    hot = get_preset(preset, learning_rate=10 * base.learning_rate, min_lr=10 * base.min_lr)
    with tempfile.TemporaryDirectory() as out:
        return train(hot, out_dir=out, progress=False, log=lambda *args: None).history
