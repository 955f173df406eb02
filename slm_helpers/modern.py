"""The pieces of the modern recipe that replace GPT-2's (notebook 09), each a switch of
:class:`~slm_helpers.model.GPTConfig`, all off in the GPT-2 presets:

* ``position="rotary"``: no position embedding; each head's queries and keys are rotated by
  an angle proportional to their position (RoPE, Su et al. 2021), so a score q.k depends on
  how far apart two tokens are, not where they stand;
* ``norm="rmsnorm"``: divide by the root mean square, no mean subtracted, no gain or bias
  (as nanochat): one reduction instead of two, nothing to learn;
* ``mlp="relu2"`` (ReLU squared, modded-nanogpt and nanochat) or ``mlp="swiglu"`` (LLaMA),
  at the GELU MLP's parameter count;
* ``qk_norm=True``: RMS-normalize queries and keys per head before their dot product, which
  bounds the scores, so a large learning rate cannot blow the softmax up;
* ``tie_head=False``: the output head is a matrix of its own, not the token embedding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

POSITIONS = ("learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "relu2", "swiglu")


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the last dimension, no parameters."""
    return F.rms_norm(x, (x.size(-1),))


class RMSNorm(nn.Module):
    """:func:`rms_norm` as a layer, where GPT-2 has a LayerNorm (it holds no weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x)


def make_norm(config) -> nn.Module:
    """The normalization layer ``config.norm`` asks for."""
    if config.norm == "rmsnorm":
        return RMSNorm()
    return nn.LayerNorm(config.n_embd, bias=config.bias)


class Rotary(nn.Module):
    """Rotary position embedding for heads of ``head_size`` channels, positions 0..block_size-1.

    Channel pairs (i, i + head_size/2) are rotated by the angle ``position * base^(-2i/head_size)``:
    fast turns in the first pairs, slow ones in the last. Rotating q at position m and k at n by
    their own angles makes q.k depend on m - n only."""

    def __init__(self, head_size: int, block_size: int, base: float = 10_000.0):
        super().__init__()
        if head_size % 2:
            raise ValueError(f"rotary embeddings need an even head size, not {head_size}")
        self.base = base
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)  # (T, head_size/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``x`` (B, n_head, T, head_size) at positions start..start+T-1, rotated."""
        T = x.size(2)
        cos, sin = self.cos[start:start + T].to(x.dtype), self.sin[start:start + T].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def mlp_hidden(config) -> int:
    """The MLP's hidden width: 4 x n_embd, or for SwiGLU's three matrices 8/3 x n_embd, which
    keeps the parameter count of two 4x matrices (8 n_embd^2)."""
    return round(8 * config.n_embd / 3) if config.mlp == "swiglu" else 4 * config.n_embd


def mlp_weights(config) -> int:
    """Weights one MLP holds (biases aside): what a token meets there, for the FLOP count."""
    matrices = 3 if config.mlp == "swiglu" else 2
    return matrices * config.n_embd * mlp_hidden(config)


class ModernMLP(nn.Module):
    """ReLU^2 (up, relu(x)^2, down) or SwiGLU (down(silu(gate(x)) * up(x))). The names follow
    GPT-2's MLP (``c_fc`` up, ``c_proj`` down) so the residual projection is initialized alike."""

    def __init__(self, config):
        super().__init__()
        hidden = mlp_hidden(config)
        self.kind = config.mlp
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        if self.kind == "swiglu":
            self.c_gate = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            h = F.silu(self.c_gate(x)) * self.c_fc(x)
        else:
            h = F.relu(self.c_fc(x)).square()
        return self.dropout(self.c_proj(h))
