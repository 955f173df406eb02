"""Worked solutions to notebook 03's exercises (tests/test_exercises.py checks them)."""

import math


def exercise_1(n_layer: int = 12, n_embd: int = 768, block_size: int = 1024, vocab_size: int = 50257) -> int:
    """GPT-2 small by hand: 124,439,808 parameters, the number OpenAI's checkpoint has.

    Per block: two LayerNorms (a gain and a bias of C each), attention (c_attn C x 3C + 3C,
    c_proj C x C + C) and the MLP (c_fc C x 4C + 4C, c_proj 4C x C + C): 12C^2 + 13C. Around
    the blocks: the token embedding V x C, the position embedding block x C and the final
    LayerNorm 2C. The head adds nothing: it is the token embedding, tied."""
    C = n_embd
    per_block = 2 * (2 * C) + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    return n_layer * per_block + vocab_size * C + block_size * C + 2 * C


def exercise_2(vocab_size: int = 50257) -> float:
    """A model that spreads its probability evenly gives every token 1/V, so its loss is
    -ln(1/V) = ln(V): 10.82 nats for GPT-2's vocabulary. An untrained model starts there."""
    return math.log(vocab_size)
