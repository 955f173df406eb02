"""Worked solutions to notebook 02's exercises (tests/test_exercises.py checks them)."""

import torch


def sliding_window_mask(T: int, window: int) -> torch.Tensor:
    """Position i sees itself and the window - 1 positions before it: i - window < j <= i.
    The causal mask is the special case window = T. Mistral-style models use such a band to
    make attention's cost grow with the window, not with the whole context."""
    i = torch.arange(T)[:, None]  # query positions, as a column
    j = torch.arange(T)[None, :]  # key positions, as a row
    return (j <= i) & (j > i - window)


def exercise_1(window: int = 3):
    return sliding_window_mask


def exercise_2(n_embd: int = 384) -> tuple[int, bool]:
    """c_attn maps C channels to 3C (queries, keys and values of every head at once) and
    c_proj maps the heads' C channels back to C, each with a bias. The number of heads does
    not change the count: it only splits the same channels."""
    c_attn = n_embd * 3 * n_embd + 3 * n_embd
    c_proj = n_embd * n_embd + n_embd
    return c_attn + c_proj, False  # the heads split the same channels: no parameters of their own
