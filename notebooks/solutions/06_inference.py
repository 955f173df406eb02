"""Worked solutions to notebook 06's exercises (tests/test_exercises.py checks them)."""

import torch


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling's filter, built from top-k's idea. Top-k keeps a fixed number of the
    most likely tokens; top-p sorts them the same way but keeps them until their
    probabilities add up to p, so it keeps few tokens when the model is sure and many when it
    is not. A token is kept if the tokens before it do not yet reach p (the first always is)."""
    sorted_probs, order = probs.sort(descending=True)
    keep = (sorted_probs.cumsum(0) - sorted_probs) < p
    kept = torch.zeros_like(probs).scatter(0, order, sorted_probs * keep)  # back in vocabulary order
    return kept / kept.sum()


def exercise_1():
    return top_p_filter


def exercise_2():
    """Temperature divides the logits (below 1 the favourite gains, above 1 the others do);
    top-k sets every logit below the k-th largest to minus infinity, so softmax gives it zero;
    then one draw from the probabilities. `torch.multinomial` with a seeded generator draws
    the same token for the same seed, as `generate_ids` does."""

    def sample_next(logits: torch.Tensor, temperature: float, top_k, generator) -> int:
        logits = logits / temperature
        if top_k is not None:
            kth_largest = torch.topk(logits, top_k).values[-1]
            logits = logits.masked_fill(logits < kth_largest, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))

    return sample_next
