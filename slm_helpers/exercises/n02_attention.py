"""Checks of notebook 02's exercises (attention)."""

from __future__ import annotations

import numpy as np
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
    """Both questions: how many parameters CausalSelfAttention has at ``n_embd`` channels, and
    whether the number of heads changes it (no: the heads split the same channels). The answer
    is (count, changes), changes as True/False or "yes"/"no"."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return False, ("give both answers: (the number of parameters, True or False: does the number of heads "
                       "change it?)")
    count, heads_change_it = answer
    expected = 4 * n_embd * n_embd + 4 * n_embd  # c_attn: C x 3C + 3C; c_proj: C x C + C
    if count is None or float(count) != expected:
        return False, "c_attn maps C to 3C (q, k, v) and c_proj C to C, each with a bias"
    said = heads_change_it
    if isinstance(said, str):
        said = {"yes": True, "true": True, "no": False, "false": False}.get(said.strip().lower())
    if not isinstance(said, (bool, np.bool_)):
        return False, (f"the count is right; now say whether the number of heads changes it: True or False, not "
                       f"{heads_change_it!r}")
    return not said, ("the count is right, but the heads do not change it: they split the same C channels into "
                      "n_head groups of C / n_head, and c_attn and c_proj keep their shapes")
