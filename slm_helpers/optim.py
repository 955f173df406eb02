"""How the weights move: the training settings, AdamW, the learning-rate schedule, and the
optimizer step (notebook 04, sections 1-4).

The schedule is linear warmup then cosine decay to ``min_lr`` (or, for notebook 09's modern recipe,
warmup, a constant peak and a linear decay over the last steps: "wsd"), counted in optimizer steps;
the step is unscale, clip, step, in that order. Two of the original run's four bugs lived
here: a learning-rate floor above the peak (bug 1, refused by :class:`TrainConfig`) and
clipping before unscaling (bug 2, see :func:`optimizer_step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from slm_helpers.device import DEVICE_PATTERN, DTYPES
from slm_helpers.errors import SlmError, check_int, check_number

OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "wsd")


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the defaults are the original run's, with its bugs fixed."""

    batch_size: int = 32  # sequences per micro-batch (per process under torchrun)
    grad_accum_steps: int = 32  # micro-batches per optimizer step
    max_steps: int = 20_000  # optimizer steps (not micro-batches: bug 3)
    warmup_steps: int = 1_000  # optimizer steps of linear warmup
    learning_rate: float = 1e-4  # peak
    min_lr: float = 1e-5  # floor of the cosine decay, below the peak (bug 1)
    weight_decay: float = 0.1  # on matrices only, not on biases and LayerNorm
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-9
    grad_clip: float = 0.5  # max gradient norm, applied to unscaled gradients (bug 2); 0 turns it off
    eval_interval: int = 500  # optimizer steps between evaluations
    eval_batches: int = 100  # batches per split per evaluation (bug 4: the original used 500 every 500 micro-steps)
    seed: int = 1337
    device: str = "auto"  # "auto", "cuda", "mps", "cpu" (or "cuda:1", ...)
    dtype: str = "auto"  # "auto", "bfloat16", "float16", "float32"
    # "muon": Muon for the blocks' matrices at muon_lr, AdamW at learning_rate for the rest (notebook 09)
    optimizer: str = "adamw"
    muon_lr: float = 0.02  # peak of Muon's matrices: warmed up alike, then cosine down to the same min_lr
    muon_momentum: float = 0.95
    # AdamW's peaks for the token embedding and an untied output head; None: learning_rate. A row of
    # the embedding moves only when its token occurs, so it can take a far larger rate (notebook 09).
    embedding_lr: float | None = None
    head_lr: float | None = None
    # "cosine": warmup, then cosine down to min_lr. "wsd" (warmup, stable, decay): warmup, the peak held,
    # then a straight line down to min_lr over the last decay_fraction of the steps (notebook 09).
    schedule: str = "cosine"
    decay_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum_steps", "max_steps", "eval_interval", "eval_batches"):
            check_int(name, getattr(self, name))
        for name in ("warmup_steps", "seed"):
            check_int(name, getattr(self, name), minimum=0)
        for name in ("learning_rate", "min_lr", "weight_decay", "eps", "grad_clip", "muon_lr"):
            check_number(name, getattr(self, name))
        if self.learning_rate == 0 or self.eps == 0:
            raise SlmError(f"learning_rate and eps must be > 0, not {self.learning_rate} and {self.eps}")
        betas = self.betas
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise SlmError(f"betas must be two numbers in [0, 1), such as (0.9, 0.95), not {betas!r}")
        if not self.warmup_steps < self.max_steps:
            raise SlmError(f"warmup_steps must be in [0, max_steps={self.max_steps}), not {self.warmup_steps}")
        if not self.min_lr < self.learning_rate:
            raise SlmError(
                f"min_lr={self.min_lr} must be below learning_rate={self.learning_rate}: a floor above the peak makes "
                "the cosine 'decay' raise the learning rate (the original run's bug 1). Try learning_rate / 10."
            )
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise SlmError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', not {self.device!r}")
        if self.optimizer not in OPTIMIZERS:
            raise SlmError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, not {self.optimizer!r}")
        momentum = self.muon_momentum
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise SlmError(f"muon_momentum must be a number in [0, 1), such as 0.95, not {momentum!r}")
        if self.schedule not in SCHEDULES:
            raise SlmError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, not {self.schedule!r}")
        # The cosine ends every group at min_lr itself, so each peak must lie above it (a floor above a peak would
        # raise that group's rate: bug 1 again); wsd ends each group at its own peak x min_lr / learning_rate.
        floor = (self.min_lr, f"min_lr={self.min_lr} (the cosine's floor)") if self.schedule == "cosine" else (0.0, "0")
        if self.optimizer == "muon" and not self.muon_lr > floor[0]:
            raise SlmError(f"muon_lr={self.muon_lr} must be above {floor[1]}")
        for name in ("embedding_lr", "head_lr"):
            rate = getattr(self, name)
            if rate is not None and check_number(name, rate, hint=" (or None: learning_rate)") <= floor[0]:
                raise SlmError(f"{name}={rate} must be above {floor[1]}, or None (learning_rate)")
        check_number("decay_fraction", self.decay_fraction)
        if self.schedule == "wsd" and not (0 < self.decay_fraction <= 1
                                           and self.warmup_steps <= self.max_steps - self.decay_steps()):
            raise SlmError(f"decay_fraction must be in (0, 1] and leave the warmup ({self.warmup_steps} steps) "
                           f"before the decay starts, not {self.decay_fraction}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise SlmError(f"dtype must be 'auto', {', '.join(map(repr, DTYPES))}, not {self.dtype!r}")

    def decay_steps(self) -> int:
        """The wsd schedule's last steps, over which the rate falls linearly to min_lr."""
        return round(self.decay_fraction * self.max_steps)

    def tokens_per_step(self, block_size: int, world_size: int = 1) -> int:
        return self.batch_size * block_size * self.grad_accum_steps * world_size


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices (linear weights, embeddings) only: decaying biases
    and LayerNorm gains towards zero only hurts. With ``config.optimizer == "muon"``, the
    blocks' matrices step with Muon instead (:mod:`slm_helpers.muon`). ``embedding_lr`` and
    ``head_lr``, when set, give the token embedding and an untied head AdamW groups of their own,
    after the others (so a run without them keeps its groups, and its checkpoints resume)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    own = own_rate_groups(named, config)
    taken = {id(p) for group in own for p in group["params"]}
    if config.optimizer == "muon":
        from slm_helpers.muon import MuonWithAdamW

        in_blocks = {id(p) for n, p in named if p.dim() == 2 and ".h." in f".{n}"}
        rest = [p for _, p in named if id(p) not in in_blocks]
        groups = [
            {"params": [p for _, p in named if id(p) in in_blocks], "muon": True, "lr": config.muon_lr},
            {"params": [p for p in rest if p.dim() >= 2 and id(p) not in taken], "weight_decay": config.weight_decay},
            {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
        ]
        return MuonWithAdamW(groups + own, lr=config.learning_rate, betas=config.betas, eps=config.eps,
                             momentum=config.muon_momentum)
    params = [p for _, p in named]
    groups = [
        {"params": [p for p in params if p.dim() >= 2 and id(p) not in taken], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups + own, lr=config.learning_rate, betas=config.betas, eps=config.eps)


def own_rate_groups(named: list, config: TrainConfig) -> list[dict]:
    """The token embedding's and the untied head's AdamW groups, for those whose rate the config
    sets. A head tied to the embedding has no weight of its own to give a rate: refused."""
    by_name = {n.removeprefix("_orig_mod."): p for n, p in named}
    groups = []
    for rate, name, what in ((config.embedding_lr, "transformer.wte.weight", "embedding_lr"),
                             (config.head_lr, "lm_head.weight", "head_lr")):
        if rate is None:
            continue
        if name not in by_name:
            raise SlmError(f"{what}={rate} needs the model's own {name.split('.')[-2]} weight (a head tied to the "
                           "embedding has none: set tie_head=False, or leave it None)")
        groups.append({"params": [by_name[name]], "lr": rate, "weight_decay": config.weight_decay})
    return groups


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup from ~0 to the peak over ``warmup_steps``, then cosine down to ``min_lr``
    at ``max_steps``; stepped once per optimizer step. With ``schedule="wsd"``, the peak is held
    after the warmup and falls in a straight line over the last ``decay_fraction`` of the steps,
    each group to its own peak x ``min_lr / learning_rate``."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR

    if config.schedule == "wsd":
        return LambdaLR(optimizer, lambda step: wsd_factor(step, config))
    cosine = CosineAnnealingLR(optimizer, T_max=config.max_steps - config.warmup_steps, eta_min=config.min_lr)
    if config.warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1.0 / config.warmup_steps, end_factor=1.0,
                      total_iters=config.warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[config.warmup_steps])


def wsd_factor(step: int, config: TrainConfig) -> float:
    """The wsd schedule at ``step``, as a fraction of each group's peak: the warmup's line (as
    the cosine schedule's), 1 while stable, then down to ``min_lr / learning_rate`` at ``max_steps``."""
    warmup, start = config.warmup_steps, config.max_steps - config.decay_steps()
    if step < warmup:
        return 1.0 / warmup + (1 - 1.0 / warmup) * step / warmup
    if step < start:
        return 1.0
    floor = config.min_lr / config.learning_rate
    return 1.0 - (1.0 - floor) * min(1.0, (step - start) / (config.max_steps - start))


def learning_rates(config: TrainConfig, steps: int | None = None) -> list[float]:
    """The learning rate at each optimizer step of ``config``'s schedule (for plots)."""
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = make_scheduler(optimizer, config)
    rates = []
    for _ in range(steps or config.max_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def optimizer_step(model: torch.nn.Module, optimizer, scaler: torch.amp.GradScaler, grad_clip: float) -> torch.Tensor:
    """Unscale, clip, step, update the scaler, clear the gradients; in that order.

    With fp16, the backward pass ran on ``loss * scale``, so the gradients are ``scale`` times
    too big. They must be unscaled *before* clipping, or the clip threshold applies to scaled
    gradients and means nothing (the original run's bug 2). ``scaler.step`` skips the update
    when it finds inf/NaN gradients (the scale was too high) and ``scaler.update`` lowers the
    scale. Returns the gradient norm before clipping (``grad_clip <= 0``: no clipping).
    """
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return norm
