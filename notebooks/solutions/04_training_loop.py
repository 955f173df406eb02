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

    Measured on the `ci` preset (validation loss at steps 0, 10, 20, 30, 40):
        1x  (peak 3e-3): 10.83, 8.64, 6.29, 5.64, 5.49
        10x (peak 3e-2): 10.83, 5.85, 5.50, 5.40, 5.35
    Ten times the rate trains *faster* here, and even 30x still ends at 5.36. A 40-step run
    of a tiny model mostly learns which tokens are common, an easy, smooth problem, and
    AdamW moves each weight by about the learning rate whatever its gradient's size, so a
    bigger rate just gets there sooner; warmup and clipping keep the first steps safe. The
    `ci` preset's rate is simply low for so short a run. Too high a rate shows as a loss that
    stalls high, jumps, or becomes NaN (the helper stops then and says so); where that starts
    depends on the model and the data, so the same experiment on the `cpu` preset is the
    next step. The lesson: the best learning rate is found by trying, per model."""
    base = get_preset(preset).train
    hot = get_preset(preset, learning_rate=10 * base.learning_rate, min_lr=10 * base.min_lr)
    with tempfile.TemporaryDirectory() as out:
        return train(hot, out_dir=out, progress=False, log=lambda *args: None).history
