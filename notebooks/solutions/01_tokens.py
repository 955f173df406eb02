"""Worked solutions to notebook 01's exercises (tests/test_exercises.py checks them)."""

import numpy as np

from slm_helpers.tokenizer import get_tokenizer


def exercise_1(name: str = "Ada Lovelace") -> list[int]:
    """The token ids of a name. A name is ordinary text, so `encode_ordinary` (which never
    turns text into special tokens). Names the training data saw often are one or two tokens;
    rare ones are cut into pieces, and a leading space changes the pieces."""
    return get_tokenizer().encode_ordinary(name)


def exercise_2(token_id: int = 70_000) -> tuple[int, type]:
    """uint16 holds 0..65,535. An id above that does not raise: it wraps around modulo 65,536,
    so 70,000 is stored as 4,464, another token entirely, and the model silently trains on
    the wrong text. A 100K vocabulary (GPT-4's cl100k has 100,277 ids) needs the next unsigned
    type up, uint32: twice the disk and memory per token."""
    stored = int(np.array([token_id]).astype(np.uint16)[0])
    return stored, np.uint32
