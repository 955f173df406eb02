"""Checks of notebook 07's exercises (speed)."""

from __future__ import annotations

import math

from slm_helpers.exercises.registry import exercise


@exercise("07.1")
def _head_share(answer, preset: str):
    from slm_helpers.presets import get_preset
    from slm_helpers.speed import flops_per_token

    flops = flops_per_token(get_preset(preset).model)
    expected = flops["output head + loss"] / sum(flops.values())
    return math.isclose(float(answer), expected, abs_tol=0.005), (
        "the head's training FLOPs per token are 6 x vocab_size x n_embd; each layer adds 6 x (12 n_embd^2 + "
        "2 block_size n_embd); divide the head's by the sum")


@exercise("07.2")
def _break_even_steps(answer, **_):
    """A ratio that is not whole (7 s / 0.3 s = 23.3) must be rounded up: 24, not 23. When it is
    whole (30 s / 0.3 s = 100), the compilation is paid back exactly at step 100, so 100 and 101
    are both right; floating point gives either (0.5 - 0.2 is 0.30000000000000004), whatever
    the rounding code, so both are accepted."""
    from fractions import Fraction

    cases = [((30.0, 0.5, 0.2), 100), ((10.0, 0.3, 0.1), 50), ((7.0, 0.5, 0.2), 24), ((8.0, 1.0, 0.5), 16),
             ((5.0, 0.2, 0.25), None), ((1.0, 0.3, 0.3), None)]
    for (compile_seconds, eager, compiled), expected in cases:
        got = answer(compile_seconds, eager, compiled)
        ratio = Fraction(str(compile_seconds)) / (Fraction(str(eager)) - Fraction(str(compiled)) or 1)
        accepted = {None} if expected is None else {expected, expected + 1} if ratio.denominator == 1 else {expected}
        if got not in accepted:
            return False, (f"for compile {compile_seconds} s, eager {eager} s/step, compiled {compiled} s/step the "
                           f"answer is {expected}: the compilation is paid back after compile / (eager - compiled) "
                           "steps, rounded up; None when compiled steps are not faster")
    return True, ""
