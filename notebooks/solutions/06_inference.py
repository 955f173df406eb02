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


def exercise_2(logits: tuple[float, ...] = (2.0, 1.0, 0.0), temperature: float = 0.5) -> float:
    """Temperature divides the logits before the softmax: at 0.5 the gaps double, and the
    favourite's share grows from 0.67 to 0.87."""
    return torch.softmax(torch.tensor(logits) / temperature, dim=-1).max().item()
