"""The training loop, written out by hand (filled in by the training issue)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the defaults are the original run's, with its bugs fixed."""

    batch_size: int = 32  # sequences per micro-batch
    grad_accum_steps: int = 32  # micro-batches per optimizer step
    max_steps: int = 20_000  # optimizer steps (not micro-batches: bug 3)
    warmup_steps: int = 1_000  # optimizer steps of linear warmup
    learning_rate: float = 1e-4  # peak
    min_lr: float = 1e-5  # floor of the cosine decay, below the peak (bug 1)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-9
    grad_clip: float = 0.5  # max gradient norm, applied to unscaled gradients (bug 2)
    eval_interval: int = 500  # optimizer steps between evaluations
    eval_batches: int = 100  # batches per split per evaluation (bug 4: the original used 500)
    seed: int = 1337
