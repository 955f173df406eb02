"""A GPT-2-style decoder-only transformer, small enough to read in one sitting.

Token + position embeddings, ``n_layer`` pre-LayerNorm blocks (causal self-attention, then a
2-layer GELU MLP, each on a residual branch), a final LayerNorm and a language-model head
whose weight *is* the token embedding. Parameter names follow GPT-2's checkpoints
(``transformer.wte``, ``transformer.h.0.attn.c_attn``, ...), so weights map one to one.

Notebook 02 builds the attention by hand and notebook 03 the whole model; both end by
showing that these classes give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_helpers.errors import SlmError, check_int
from slm_helpers.modern import MLPS, NORMS, POSITIONS, ModernMLP, Rotary, make_norm, mlp_weights, rms_norm


@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the original run's (about 30M parameters)."""

    block_size: int = 128  # longest sequence the model sees (the context)
    vocab_size: int = 50257  # GPT-2's BPE vocabulary
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.1
    bias: bool = True  # biases in Linear and LayerNorm layers, as GPT-2
    flash: bool = True  # False forces the manual attention path even where the fused one exists
    tokenizer: str = "gpt2"  # whose ids the model reads: slm_helpers.tokenizer.Tokenizer.name
    # Switches for experiments that break one part to show what it does (notebook 03's exercises):
    causal: bool = True  # False: every position also sees the later ones, the very tokens it must predict
    residual: bool = True  # False: each block replaces its input (x = f(x)) instead of adding to it
    scale_attention: bool = True  # False: attention scores without the 1 / sqrt(head_size)
    init: str = "gpt2"  # "gpt2": N(0, 0.02), residual projections scaled down; "pytorch": each layer's default
    # The modern recipe's pieces (slm_helpers.modern, notebook 09); the defaults are GPT-2's:
    position: str = "learned"  # "rotary": no position embedding, queries and keys rotated by position
    norm: str = "layernorm"  # "rmsnorm": root-mean-square normalization without parameters
    mlp: str = "gelu"  # "relu2" or "swiglu", at the same parameter count
    qk_norm: bool = False  # True: queries and keys RMS-normalized per head
    tie_head: bool = True  # False: the output head is a matrix of its own

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            check_int(name, getattr(self, name))
        for name in ("bias", "flash", "causal", "residual", "scale_attention", "qk_norm", "tie_head"):
            if not isinstance(getattr(self, name), bool):
                raise SlmError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.init not in ("gpt2", "pytorch"):
            raise SlmError(f"init must be 'gpt2' or 'pytorch', not {self.init!r}")
        for name, choices in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in choices:
                raise SlmError(f"{name} must be one of {', '.join(map(repr, choices))}, not {getattr(self, name)!r}")
        if self.position == "rotary" and (self.n_embd // self.n_head) % 2:
            raise SlmError(f"rotary positions rotate channel pairs: the head size n_embd // n_head = "
                           f"{self.n_embd // self.n_head} must be even")
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise SlmError(f"tokenizer must be a tokenizer's name such as 'gpt2', not {self.tokenizer!r}")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise SlmError(f"dropout must be a number in [0, 1), not {self.dropout!r}")
        if self.n_embd % self.n_head:
            raise SlmError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}: each head gets "
                f"n_embd // n_head channels. Try n_head in {[h for h in range(1, 17) if self.n_embd % h == 0]}."
            )

    def modern_pieces(self) -> list[str]:
        """The switches of the modern recipe this configuration turns on (notebook 09)."""
        pieces = [f"{name}={getattr(self, name)}" for name, gpt2 in (("position", "learned"), ("norm", "layernorm"),
                                                                       ("mlp", "gelu")) if getattr(self, name) != gpt2]
        return pieces + ["qk_norm"] * self.qk_norm + ["untied head"] * (not self.tie_head)

    def with_tokenizer(self, tokenizer) -> GPTConfig:
        """This configuration for a model that reads ``tokenizer``'s ids (a dataset's
        :class:`~slm_helpers.tokenizer.Tokenizer`): its ``vocab_size`` and name."""
        return replace(self, vocab_size=tokenizer.n_vocab, tokenizer=tokenizer.name)

    @classmethod
    def from_dict(cls, saved: dict) -> GPTConfig:
        """The configuration a file saved. A setting it lacks (saved before the setting existed)
        takes its default; one this version does not know is a ``ValueError`` naming it."""
        if not isinstance(saved, dict):
            raise SlmError(f"a model configuration is a dict of settings, not {type(saved).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise SlmError(f"unknown setting(s) {', '.join(unknown)}: it was written by a newer version")
        return cls(**saved)


def check_token_ids(idx: torch.Tensor, vocab_size: int) -> None:
    """A clear error for input the model cannot read: not a 2-D ``(batch, time)`` tensor of
    integer ids, or ids outside the vocabulary. The range is checked only for ids on the CPU,
    where it is cheap; on a GPU it would stop the device twice per forward pass (the training
    loop checks the dataset once instead, and generation checks the prompt's ids). Under
    ``torch.compile`` the compiled kernels check the range themselves ("index out of bounds"), so
    it is skipped there: a data-dependent test would split the graph."""
    if not isinstance(idx, torch.Tensor):
        raise SlmError(f"idx must be a tensor of token ids, not {type(idx).__name__}: use torch.tensor([ids])")
    if idx.dim() != 2:
        raise SlmError(f"idx must be 2-D, (batch, time), not of shape {tuple(idx.shape)}: "
                       + ("add a batch dimension with idx[None]" if idx.dim() == 1 else "one row of ids per sequence"))
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise SlmError(f"idx must hold integer token ids (torch.long), not {idx.dtype}: use idx.long() on whole "
                       "numbers")
    if torch.compiler.is_compiling():
        return
    if idx.device.type == "cpu" and idx.numel() and (idx.min() < 0 or idx.max() >= vocab_size):
        bad = int(idx.max()) if idx.max() >= vocab_size else int(idx.min())
        raise SlmError(f"Token id {bad} is outside the vocabulary [0, {vocab_size}).")


class LayerKVCache:
    """The keys and values one attention layer has computed so far, shape (B, n_head, T, head_size)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        """Positions cached so far."""
        return 0 if self.k is None else self.k.size(2)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


class KVCache:
    """Keys and values of every layer, so that generating a token costs one position, not the
    whole context. Valid only while positions stay the same: see notebook 06."""

    def __init__(self, n_layer: int) -> None:
        self.layers = [LayerKVCache() for _ in range(n_layer)]

    def __len__(self) -> int:
        """Positions cached so far."""
        return len(self.layers[0])


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees only itself and the past."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.flash, self.causal, self.scale_attention = config.flash, config.causal, config.scale_attention
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.rotary = Rotary(config.n_embd // config.n_head, config.block_size) if config.position == "rotary" else None
        self.qk_norm = config.qk_norm
        # Lower-triangular mask for the manual path; a buffer (moves with .to(), not trained, not saved).
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask.view(1, 1, config.block_size, config.block_size), persistent=False)

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): every head attends independently.
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        q, k = self.position_and_norm(q, k, len(cache) if cache is not None else 0)
        causal = self.causal
        if cache is not None:
            if T > 1 and cache.k is not None:
                raise SlmError("With a KV cache, feed the whole prompt first, then one token at a time.")
            k, v = cache.append(k, v)
            causal = causal and T > 1  # one new token may look at every cached position: no mask needed
        if self.flash:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0.0, is_causal=causal,
                scale=None if self.scale_attention else 1.0,
            )
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)) if self.scale_attention else 1.0)
            if causal:
                att = att.masked_fill(~self.causal_mask[:, :, :T, :T], float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def position_and_norm(self, q: torch.Tensor, k: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys at positions start.., rotated (rotary) and normalized (QK-norm) if
        the model has those pieces; as they are otherwise. The cache keeps keys rotated."""
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        if self.qk_norm:
            q, k = rms_norm(q), rms_norm(k)
        return q, k


class MLP(nn.Module):
    """Position-wise feed-forward: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One transformer block: x + attn(ln(x)), then x + mlp(ln(x)) (pre-LayerNorm)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config) if config.mlp == "gelu" else ModernMLP(config)
        self.residual = config.residual

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        if not self.residual:  # an experiment: what each block computes replaces its input
            x = self.attn(self.ln_1(x), cache)
            return self.mlp(self.ln_2(x))
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The whole language model. ``forward(idx, targets)`` returns ``(logits, loss)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
            # position embedding (rotary positions live in the attention instead)
            **({"wpe": nn.Embedding(config.block_size, config.n_embd)} if config.position == "learned" else {}),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=make_norm(config),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_head:
            # Weight tying: the head shares the embedding's tensor (not a copy), so one matrix both
            # reads tokens in and scores them out.
            self.lm_head.weight = self.transformer.wte.weight
        if config.init == "pytorch":  # an experiment: each layer's own default (the embedding: N(0, 1))
            return
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 * n_layer),
        # so the stream's variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Distinct parameters (the tied head counts once); ``non_embedding`` leaves out the
        token embedding, the usual convention for "model size" (Kaplan et al., 2020)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        return n - self.transformer.wte.weight.numel() if non_embedding else n

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token embeddings of ``idx`` at positions start.., plus their position embeddings
        (learned positions; rotary ones are added inside the attention)."""
        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(torch.arange(start, start + idx.size(1), device=idx.device))
        return x

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final LayerNorm's output, ``(B, T, n_embd)``: what ``lm_head`` turns into logits.

        With a ``cache``, ``idx`` holds only the new tokens: positions continue after the
        cached ones.
        """
        check_token_ids(idx, self.config.vocab_size)
        B, T = idx.size()
        start = len(cache) if cache is not None else 0
        if start + T > self.config.block_size:
            raise SlmError(
                f"Sequence of length {start + T} is longer than block_size={self.config.block_size}: the model has "
                f"position embeddings for {self.config.block_size} positions only. Keep the last "
                f"{self.config.block_size} tokens (idx[:, -block_size:])."
            )
        x = self.transformer.drop(self.embed(idx, start))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layers[i] if cache is not None else None)
        return self.transformer.ln_f(x)

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """The attention weights of every head of block ``layer`` on one sequence ``idx`` of
        shape ``(1, T)``: ``(n_head, T, T)``, row i the query position (for pictures; the
        forward pass never forms them on the fused path)."""
        if not 0 <= layer < self.config.n_layer:
            raise SlmError(f"layer must be in [0, {self.config.n_layer}), not {layer}")
        check_token_ids(idx, self.config.vocab_size)
        T = idx.size(1)
        x = self.embed(idx)
        for block in self.transformer.h[:layer]:
            x = block(x)
        attn = self.transformer.h[layer].attn
        q, k, _ = attn.c_attn(self.transformer.h[layer].ln_1(x)).split(self.config.n_embd, dim=2)
        q, k = attn.position_and_norm(*(t.view(1, T, attn.n_head, -1).transpose(1, 2) for t in (q, k)), start=0)
        scores = (q @ k.transpose(-2, -1)) / (math.sqrt(k.size(-1)) if attn.scale_attention else 1.0)
        if attn.causal:
            scores = scores.masked_fill(~attn.causal_mask[:, :, :T, :T], float("-inf"))
        return F.softmax(scores, dim=-1)[0]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        """Logits for the next token, and the cross-entropy loss when ``targets`` are given.

        Without targets (generation) only the last position's logits are computed: shape
        ``(B, 1, vocab_size)`` instead of ``(B, T, vocab_size)``. See :meth:`hidden_states`
        for ``cache``.
        """
        x = self.hidden_states(idx, cache)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss


PARTS = ("embeddings", "attention", "MLP", "output head + loss", "optimizer")


def flops_per_token(config: GPTConfig) -> dict[str, float]:
    """Training FLOPs per token of each part of the model: forward (2 per multiply-add) plus
    backward (twice the forward), so 6 x the weights a token meets, plus attention's scores.

    * attention, per layer: q, k, v and the output projection, ``4 n_embd^2`` weights, and
      the scores and weighted sum, ``2 x block_size x n_embd`` multiply-adds;
    * MLP, per layer: ``8 n_embd^2`` weights (up 4x, down again; SwiGLU's three matrices hold
      as many);
    * output head: ``vocab_size x n_embd`` weights, at every position (tied or not);
    * rotary positions, RMSNorm and QK-norm: a few operations per channel, ~0 against these;
    * embeddings and the optimizer: lookups and per-parameter updates, ~0 per token.

    Their sum is the training estimates' FLOPs per token (:mod:`slm_helpers.plan`), notebook
    07's breakdown and the benchmarks'.
    """
    if not isinstance(config, GPTConfig):
        raise SlmError(f"flops_per_token takes a model configuration (preset.model), not {type(config).__name__}")
    C, L, T, V = config.n_embd, config.n_layer, config.block_size, config.vocab_size
    return {
        "embeddings": 0.0,
        "attention": 6.0 * L * (4 * C * C + 2 * T * C),
        "MLP": 6.0 * L * mlp_weights(config),
        "output head + loss": 6.0 * V * C,
        "optimizer": 0.0,
    }
