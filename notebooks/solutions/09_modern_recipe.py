"""Worked solutions to notebook 09's exercises (tests/test_exercises.py checks them)."""

import torch


def rotate(x: torch.Tensor, positions: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotary positions for rows x (T, head_size) at ``positions`` (T,). Channel i is paired with
    i + head_size/2; pair i turns by position * base^(-2i/head_size), fast first, slow last. A
    2-D rotation by angle a maps (x1, x2) to (x1 cos a - x2 sin a, x1 sin a + x2 cos a)."""
    d = x.size(-1)
    frequencies = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # (d/2,)
    angles = positions[:, None].float() * frequencies  # (T, d/2)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()], dim=-1)


def orthogonal_update(g: torch.Tensor) -> torch.Tensor:
    """The orthogonal matrix nearest g: its SVD g = U S V^T with every singular value set to 1,
    U V^T. Muon steps along it; it approximates it with five Newton-Schulz rounds, which need
    only matrix products (an SVD is slow on a GPU), and settles for singular values near 1."""
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    return u @ vh


def exercise_1():
    return rotate


def exercise_2():
    return orthogonal_update
