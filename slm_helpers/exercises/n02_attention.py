"""Checks of notebook 02's exercises (attention)."""

from __future__ import annotations

import torch

from slm_helpers.exercises.registry import exercise


@exercise("02.1")
def _sliding_window_mask(answer, window: int):
    for w in dict.fromkeys((window, 1, 2, 5)):  # the window asked, and others: the function must use its argument
        for T in (1, 5, 9):
            i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
            expected = (j <= i) & (j > i - w)
            got = torch.as_tensor(answer(T, w))
            if got.shape != (T, T) or not torch.equal(got.bool(), expected):
                return False, (f"for T={T}, window={w}: position i should see j with i - {w} < j <= i (a band of "
                               f"{w} on and below the diagonal)")
    return True, ""


@exercise("02.2")
def _attention_parameters(answer, n_embd: int):
    expected = 4 * n_embd * n_embd + 4 * n_embd  # c_attn: C x 3C + 3C; c_proj: C x C + C
    return int(answer) == expected, "c_attn maps C to 3C (q, k, v) and c_proj C to C, each with a bias"
