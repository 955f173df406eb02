"""Worked solutions to notebook 05's exercises (tests/test_exercises.py checks them)."""

import math


def first_overfitting_step(history: list[dict]) -> int | None:
    """The first evaluation at which the validation loss rose while the training loss fell:
    the model got better at its training stories and worse at new ones. None if that never
    happened. (Noise can fake one such step; on a real run, look for it to last.)"""
    for before, after in zip(history, history[1:]):
        if after["val_loss"] > before["val_loss"] and after["train_loss"] < before["train_loss"]:
            return after["step"]
    return None


def exercise_1():
    return first_overfitting_step


def exercise_2(loss: float = 2.0) -> float:
    """Perplexity is e to the loss: a loss of 2 nats is as unsure as a fair choice among
    e^2 = 7.4 tokens."""
    return math.exp(loss)
