"""Worked solutions to notebook 01's exercises (tests/test_exercises.py checks them)."""

from collections import Counter

import numpy as np


def exercise_1(text: str = "aaabdaaabac") -> list[tuple[str, str]]:
    """Three merges by hand, as a program. 'aaabdaaabac' has the pairs aa (4 times: 'aaa' holds
    two, twice), ab (2), bd, da, ba, ac (1 each): merge 1 is ('a', 'a'). The text becomes
    aa a b d aa a b a c, where aa+a, a+b both occur twice: merge 2 is either (this takes the
    first seen, ('aa', 'a')), and merge 3 joins the new token with what most often follows it."""
    tokens, merges = list(text), []
    for _ in range(3):
        counts = Counter(zip(tokens, tokens[1:]))
        pair = max(counts, key=counts.get)  # ties: the pair seen first
        merges.append(pair)
        joined, i = [], 0
        while i < len(tokens):
            if tuple(tokens[i : i + 2]) == pair:
                joined.append(pair[0] + pair[1])
                i += 2
            else:
                joined.append(tokens[i])
                i += 1
        tokens = joined
    return merges


def exercise_2(token_id: int = 70_000) -> tuple[int, type]:
    """uint16 holds 0..65,535. `.astype(np.uint16)` does not refuse a larger id: it keeps the
    lowest 16 bits, the id modulo 65,536, so 70,000 is stored as 4,464, another token entirely,
    and the model would silently train on the wrong text (numpy 2 refuses only a Python int
    put straight into a uint16 array). A 100K vocabulary needs 4 bytes per id: uint32 (int32
    holds it too; uint64 would waste 4 more bytes per token)."""
    stored = int(np.array([token_id]).astype(np.uint16)[0])
    return stored, np.uint32
