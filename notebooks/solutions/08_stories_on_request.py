"""Worked solutions for notebook 08 (stories on request)."""

from __future__ import annotations

import re


def loss_targets(prompt: list, story: list, block_size: int, pad: int) -> list:
    """The row's ids are the prompt's then the story's, cut to block_size + 1 and padded. The
    targets are the ids from the second on: position t predicts token t + 1. Position
    len(prompt) - 1 is the last of the prompt, and its target is the story's first token, so
    the first len(prompt) - 1 targets (still the prompt's) get -1; so does every target after
    the story's last token, which is padding."""
    ids = (prompt + story)[: block_size + 1]
    real = len(ids) - 1  # how many targets are real tokens
    ids = ids + [pad] * (block_size + 1 - len(ids))
    targets = ids[1:]
    return [-1 if t < len(prompt) - 1 or t >= real else target for t, target in enumerate(targets)]


def uses(story: str, word: str) -> bool:
    """Split the story into whole words, in lower case, and look for any form of the word."""
    word = word.lower()
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ed"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    return bool(forms & {w.lower() for w in re.findall(r"[A-Za-z]+", story)})


def exercise_1():
    return loss_targets


def exercise_2():
    return uses
