"""Worked solutions to notebook 07's exercises (tests/test_exercises.py checks them)."""

import math

from slm_helpers.presets import get_preset


def head_share(preset: str = "gpu") -> float:
    """The share of a training step's FLOPs that the output head takes. Per token, training
    costs 6 FLOPs per weight met (2 forward, 4 backward). The head meets vocab_size x n_embd
    weights; each layer meets 12 n_embd^2 (4 in attention, 8 in the MLP) and attention adds
    2 x block_size x n_embd multiply-adds for its scores and weighted sum. For the gpu preset:
    head 6 x 50,257 x 384 = 115.8M; layers 6 x 6 x (12 x 384^2 + 2 x 128 x 384) = 67.2M;
    the head is 63% of the FLOPs, against 88% for a 4 x 128 model with the same vocabulary
    (the cpu preset's layers): the smaller the model, the more the vocabulary weighs."""
    c = get_preset(preset).model
    head = 6 * c.vocab_size * c.n_embd
    layers = 6 * c.n_layer * (12 * c.n_embd**2 + 2 * c.block_size * c.n_embd)
    return head / (head + layers)


def break_even_steps(compile_seconds: float, eager_step: float, compiled_step: float) -> int | None:
    """torch.compile costs its compile time once and saves (eager - compiled) per step: it pays
    for itself after compile / saving steps. Never, if the compiled step is not faster."""
    saving = eager_step - compiled_step
    return math.ceil(compile_seconds / saving) if saving > 0 else None


def exercise_1(preset: str = "gpu") -> float:
    return head_share(preset)


def exercise_2():
    return break_even_steps
