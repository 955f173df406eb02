"""How good a model is: its loss on both splits, a greedy sample, and the yardsticks to read
them against (notebooks 04 and 05).

The loss is the cross-entropy of the next token, in nats per token. The training loop
evaluates with :func:`estimate_loss` every ``eval_interval`` steps and records a greedy
:func:`sample_text`, so a run's history shows what training changed.
"""

from __future__ import annotations

import torch

from slm_helpers import processes
from slm_helpers.device import autocast_context
from slm_helpers.model import GPT
from slm_helpers.optim import TrainConfig
from slm_helpers.tokenizer import Tokenizer

SAMPLE_PROMPT = "Once upon a time"
SAMPLE_TOKENS = 24


def batches_of(data):
    """``data`` as a batch source: an object with ``batch(split, batch_size, block_size,
    generator, device)`` (a :class:`~slm_helpers.data.TokenDataset`) is used as it is; a
    folder is opened as a dataset."""
    from slm_helpers.data import TokenDataset

    return data if hasattr(data, "batch") else TokenDataset.open(data)


@torch.no_grad()
def estimate_loss(model, data, config: TrainConfig, block_size: int, device, dtype, seed: int) -> dict[str, float]:
    """Mean loss over ``eval_batches`` batches of each split. The batches come from their own
    generator (the same ones at every evaluation), so evaluating never changes training.
    Under torchrun each process evaluates its own batches and the means are averaged."""
    data = batches_of(data)
    was_training = model.training
    model.eval()
    losses = {}
    for split in ("train", "validation"):
        generator = torch.Generator().manual_seed(seed)
        total = torch.zeros((), device=device)
        for _ in range(config.eval_batches):
            x, y = data.batch(split, config.batch_size, block_size, generator, device)
            with autocast_context(device, dtype):
                _, loss = model(x, y)
            total += loss.float()
        losses[split] = total / config.eval_batches
        losses[split] = processes.average(losses[split])  # under torchrun: every process's batches
    model.train(was_training)
    return {split: value.item() for split, value in losses.items()}


def sample_text(model: GPT, tokenizer: Tokenizer, prompt: str = SAMPLE_PROMPT, tokens: int = SAMPLE_TOKENS) -> str:
    """What the model writes now: ``prompt`` continued greedily (deterministic, so the saved
    samples of a run show what training changed, not chance). Recorded at every evaluation;
    notebook 05 prints them from step 0 to the end."""
    from slm_helpers.generate import write_story

    was_training = model.training
    model.eval()
    try:
        return write_story(model, tokenizer, prompt, max_new_tokens=tokens, temperature=0, stop_at_eot=False)
    finally:
        model.train(was_training)
