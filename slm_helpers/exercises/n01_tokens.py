"""Checks of notebook 01's exercises (tokens)."""

from __future__ import annotations

import numpy as np

from slm_helpers.exercises.registry import exercise


@exercise("01.1")
def _merges_by_hand(answer, text: str, merges: int = 3):
    """Replays the learner's merges: each must join a most frequent pair of the text as it then
    is (any of them, when several are equally frequent)."""
    from collections import Counter

    answer = [tuple(pair) for pair in answer]
    if len(answer) != merges or not all(len(pair) == 2 and all(isinstance(s, str) for s in pair) for pair in answer):
        return False, f"give {merges} merges, each a pair of strings such as ('a', 'b')"
    tokens = list(text)
    for n, pair in enumerate(answer, 1):
        counts = Counter(zip(tokens, tokens[1:]))
        most = max(counts.values())
        if counts.get(pair, 0) != most:
            best = sorted("".join(p) for p, c in counts.items() if c == most)
            return False, (f"merge {n}: {pair} occurs {counts.get(pair, 0)} time(s) in {tokens}, but the most frequent "
                           f"pair occurs {most} times ({', '.join(best)})")
        joined, i = [], 0
        while i < len(tokens):  # left to right, as BPE replaces
            if tuple(tokens[i : i + 2]) == pair:
                joined.append(pair[0] + pair[1])
                i += 2
            else:
                joined.append(tokens[i])
                i += 1
        tokens = joined
    return True, ""


@exercise("01.2")
def _uint16_overflow(answer, token_id: int, vocab_size: int = 100_277):
    stored, dtype = answer
    dtype = np.dtype(dtype)
    if int(stored) != token_id % 65536:
        return False, ("uint16 keeps only the lowest 16 bits: the id modulo 65,536 (try "
                       "np.array([token_id]).astype(np.uint16))")
    if dtype.kind not in "iu" or np.iinfo(dtype).max < vocab_size - 1:
        return False, f"{dtype} cannot hold id {vocab_size - 1:,}: it needs an integer type of more bits"
    if dtype.itemsize > 4:
        return False, f"{dtype} holds every id, but with {dtype.itemsize} bytes each: a smaller type is enough"
    return True, ""
