"""How good a model is: its loss on both splits, a greedy sample, and the yardsticks to read
them against (notebooks 04 and 05).

The loss is the cross-entropy of the next token, in nats per token. The training loop
evaluates with :func:`estimate_loss` every ``eval_interval`` steps and records a greedy
:func:`sample_text`, so a run's history shows what training changed.

Nats per token depend on the tokenizer: a finer one has more tokens, each easier to guess.
**Bits per byte** do not: the same loss summed over a text, in bits, divided by the bytes of
that text (:func:`bits_per_byte`). They compare a full and a compact vocabulary, GPT-2's BPE
and another tokenizer, and a model with the simplest yardsticks of the same data
(:func:`yardsticks`): guessing uniformly (ln V), a table of how often each token occurs
(unigram), and a table of which token follows which (bigram).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from slm_helpers import processes
from slm_helpers.device import autocast_context
from slm_helpers.model import GPT
from slm_helpers.optim import TrainConfig
from slm_helpers.tokenizer import Tokenizer

SAMPLE_PROMPT = "Once upon a time"
SAMPLE_TOKENS = 24


def bits_per_byte(nats_per_token: float, bytes_per_token: float) -> float:
    """A loss in nats per token as bits per byte of text: divide by ln 2 (nats to bits) and by
    the bytes of text a token stands for on average."""
    return nats_per_token / math.log(2) / bytes_per_token


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


@torch.no_grad()
def _summed_loss(model, tokens: torch.Tensor, block_size: int, batch_size: int, device) -> tuple[float, int]:
    """The loss summed over every token of ``tokens`` cut into consecutive windows of
    ``block_size`` (the last partial window left out), and how many tokens were scored."""
    windows = (len(tokens) - 1) // block_size
    x = tokens[: windows * block_size].view(windows, block_size)
    y = tokens[1 : windows * block_size + 1].view(windows, block_size)
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, windows, batch_size):
        _, loss = model(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
        total += loss.item() * x[i : i + batch_size].numel()
    model.train(was_training)
    return total, windows * block_size


def split_loss(model, data, split: str, block_size: int, batch_size: int = 32, device="cpu") -> float:
    """Mean loss over every token of ``split`` (in consecutive windows of ``block_size``), not
    over random windows: the number to report once a run is over."""
    tokens = torch.from_numpy(np.asarray(batches_of(data).tokens(split), dtype=np.int64))
    total, scored = _summed_loss(model, tokens, block_size, batch_size, device)
    return total / scored


def stories_bits_per_byte(model: GPT, tokenizer: Tokenizer, stories: list[str], batch_size: int = 32) -> float:
    """Bits per byte of ``stories`` (each followed by ``<|endoftext|>``) under ``model``: every
    token scored, in consecutive windows, the loss summed over the tokens and divided by the
    stories' UTF-8 bytes (in the share of tokens scored). For held-out stories that no dataset
    of the model's tokenizer holds (TinyStories' validation stories, scored once at the end of
    tuning on a development split)."""
    ids = [i for story in stories for i in (*tokenizer.encode_ordinary(story), tokenizer.eot_token)]
    tokens = torch.tensor(ids, dtype=torch.int64)
    device = next(model.parameters()).device  # wherever the model is
    total, scored = _summed_loss(model, tokens, model.config.block_size, batch_size, device)
    text_bytes = sum(len(story.encode("utf-8")) for story in stories) * scored / (len(tokens) - 1)
    return total / math.log(2) / text_bytes


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


# ----------------------------------------------------------------------------- yardsticks


def unigram_loss(train: np.ndarray, validation: np.ndarray, vocab_size: int) -> float:
    """Nats per token of a table of how often each token occurs in ``train`` (add-one
    smoothed, so a token never seen there still gets a little probability), on ``validation``:
    the best loss of a model that ignores the context."""
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[validation].mean())


def bigram_loss(train: np.ndarray, validation: np.ndarray, vocab_size: int, discount: float = 0.75) -> float:
    """Nats per token of a table of which token follows which in ``train``, on ``validation``:
    the best loss of a model that sees one token back. Absolute discounting (Ney et al., 1994):
    every pair seen gives up ``discount`` of its count to the unigram table, so a pair never
    seen still gets probability from how common its second token is; no setting is tuned on
    the validation split."""
    train, validation = train.astype(np.int64), validation.astype(np.int64)
    unigram = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    unigram /= unigram.sum()
    pairs, pair_counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)
    first_counts = np.bincount(train[:-1], minlength=vocab_size).astype(np.float64)  # c(a): a followed by anything
    followers = np.bincount(pairs // vocab_size, minlength=vocab_size).astype(np.float64)  # distinct b after a
    a, b = validation[:-1], validation[1:]
    keys = a * vocab_size + b
    at = np.minimum(np.searchsorted(pairs, keys), len(pairs) - 1)
    seen = np.where(pairs[at] == keys, pair_counts[at], 0).astype(np.float64)
    c_a = first_counts[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(c_a > 0, np.maximum(seen - discount, 0) / c_a + discount * followers[a] / c_a * unigram[b],
                     unigram[b])
    return float(-np.log(p).mean())


def yardsticks(dataset, max_train_tokens: int = 20_000_000) -> dict[str, dict[str, float]]:
    """The losses of the simplest models of ``dataset`` on its validation split, in nats per
    token and bits per byte: uniform guessing (ln V, where every model starts), a unigram table
    and a bigram table (counted from the first ``max_train_tokens`` training tokens: enough for
    a table, and fast for a dataset of any size)."""
    train = np.asarray(dataset.tokens("train")[:max_train_tokens])
    validation = np.asarray(dataset.tokens("validation"))
    vocab_size = dataset.vocab_size
    nats = {"uniform (ln V)": math.log(vocab_size), "unigram table": unigram_loss(train, validation, vocab_size),
            "bigram table": bigram_loss(train, validation, vocab_size)}
    per_byte = dataset.bytes_per_token("validation")
    return {name: {"nats": value, "bpb": bits_per_byte(value, per_byte)} for name, value in nats.items()}


# Published TinyStories models, for scale. Their validation text and tokenizer differ from ours,
# so their bits per byte are estimates: llama2.c's README gives nats per Llama-2 token, turned into
# bits per byte with an assumed ~4.0 bytes of TinyStories text per Llama-2 token (not measured here).
PUBLISHED = {
    "llama2.c stories15M (15M parameters, 32K-token vocabulary)": dict(nats=1.072, bytes_per_token=4.0,
                                                                     source="github.com/karpathy/llama2.c, README"),
}

