"""Checks of notebook 09's exercises (the modern recipe)."""

from __future__ import annotations

import torch

from slm_helpers.exercises.registry import exercise


def _interleaved_rotary(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """RoPE with pairs (0, 1), (2, 3), ... (the paper's layout; the series pairs i with i + d/2)."""
    d = x.size(-1)
    angles = positions[:, None].float() * base ** (-torch.arange(0, d, 2).float() / d)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = even * angles.cos() - odd * angles.sin(), even * angles.sin() + odd * angles.cos()
    return out


@exercise("09.1")
def _rotary(answer, head_size: int = 8, base: float = 10_000.0):
    """The learner's rotation of (T, head_size) rows against the series' :class:`Rotary` (pairs
    i, i + d/2) and the paper's interleaved pairs: either layout is RoPE."""
    from slm_helpers.modern import Rotary

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, head_size, generator=generator)
    positions = torch.arange(6)
    got = torch.as_tensor(answer(x.clone(), positions.clone()), dtype=torch.float32)
    ours = Rotary(head_size, 6, base)(x[None, None])[0, 0]
    if got.shape != x.shape:
        return False, f"the rotated rows should have the shape of x, {tuple(x.shape)}, not {tuple(got.shape)}"
    if torch.allclose(got, ours, atol=1e-5) or torch.allclose(got, _interleaved_rotary(x, positions, base), atol=1e-5):
        return True, ""
    if not torch.allclose(got.norm(dim=-1), x.norm(dim=-1), atol=1e-4):
        return False, "a rotation keeps each row's length; yours changes it: rotate channel pairs, do not add to them"
    return False, ("row t's channel pair i turns by the angle t * base ** (-2 i / head_size): the first pairs fast, "
                   "the last slowly (pairs i and i + head_size / 2, as slm_helpers.modern.Rotary, or 2i and 2i + 1)")


@exercise("09.2")
def _orthogonal_update(answer, **_):
    """The learner's orthogonalization against U V^T from the SVD, for a wide, a tall and a
    square matrix with lopsided singular values."""
    generator = torch.Generator().manual_seed(0)
    for rows, cols in ((4, 9), (9, 4), (6, 6)):
        u, _, vh = torch.linalg.svd(torch.randn(rows, cols, generator=generator), full_matrices=False)
        spread = torch.logspace(0, -2, min(rows, cols))  # singular values from 1 down to 0.01
        g = (u * spread) @ vh
        got = torch.as_tensor(answer(g.clone()), dtype=torch.float32)
        expected = u @ vh
        if got.shape != g.shape:
            return False, f"the update should have the gradient's shape {tuple(g.shape)}, not {tuple(got.shape)}"
        if not torch.allclose(got, expected, atol=1e-3):
            sv = torch.linalg.svdvals(got)
            return False, (f"for a {rows} x {cols} gradient the singular values of your update run from "
                           f"{sv.min():.3f} to {sv.max():.3f}: they should all be 1, with the gradient's singular "
                           "vectors (U V^T from torch.linalg.svd)")
    return True, ""
