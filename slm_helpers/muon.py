"""Muon for the blocks' matrices, AdamW for everything else: one optimizer (notebook 09).

Muon (Keller Jordan, 2024; modded-nanogpt, nanochat) keeps a momentum of each weight matrix's
gradient, as SGD does, and then replaces that matrix by the nearest *orthogonal* one (all its
singular values set to about 1) before stepping. Every direction the gradient spans then moves
by the same amount, however lopsided the raw gradient was: a few large singular directions no
longer drown the rest. The orthogonalization is a Newton-Schulz iteration, five matrix-product
rounds, cheap next to the forward and backward pass.

Muon is for 2-D matrices inside the blocks only. Embeddings (a lookup, not a product), the
output head and the vectors (biases, norms) keep AdamW, as in nanochat and modded-nanogpt.
Both kinds of group live in one ``torch.optim.Optimizer``, so the schedule, the checkpoint and
GradScaler treat it as they treat AdamW.
"""

from __future__ import annotations

import torch

# Keller Jordan's quintic coefficients: they push every singular value towards ~1 (into about
# [0.7, 1.2]) in five steps, trading exactness for speed (torch.optim.Muon uses the same).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """``matrix`` with its singular values pushed to about 1 (its singular vectors kept): the
    quintic Newton-Schulz iteration X <- aX + b(XX^T)X + c(XX^T)^2 X, in fp32."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.float()
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide orientation: X X^T is then the smaller square
        x = x.T
    x = x / (x.norm() + eps)  # the Frobenius norm bounds the largest singular value: all <= 1 now
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(matrix.dtype)


class MuonWithAdamW(torch.optim.Optimizer):
    """Param groups with ``muon=True`` step with Muon (momentum, Nesterov, orthogonalized,
    scaled by sqrt(max(1, rows / cols)) so tall and wide matrices move alike); the others with
    AdamW. Weight decay is decoupled in both (p <- p - lr * wd * p)."""

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                 momentum: float = 0.95):
        for group in groups:
            if group.get("muon") and any(p.dim() != 2 for p in group["params"]):
                raise ValueError("Muon orthogonalizes matrices: give it 2-D parameters only")
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, momentum=momentum, weight_decay=0.0, muon=False))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = self._muon(p, group) if group["muon"] else self._adamw(p, group)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"])
        return loss

    def _muon(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        state = self.state[p]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buffer, beta = state["momentum_buffer"], group["momentum"]
        buffer.lerp_(p.grad, 1 - beta)
        nesterov = p.grad.lerp(buffer, beta)  # look ahead along the momentum
        return orthogonalize(nesterov) * max(1.0, p.size(0) / p.size(1)) ** 0.5

    def _adamw(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        state["step"] += 1
        (beta1, beta2), t = group["betas"], state["step"]
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].lerp_(p.grad.square(), 1 - beta2)
        mean, square = state["exp_avg"] / (1 - beta1 ** t), state["exp_avg_sq"] / (1 - beta2 ** t)
        return mean / (square.sqrt() + group["eps"])
