"""Checks of notebook 01's exercises (tokens)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from slm_helpers.bpe import merge, pair_counts
from slm_helpers.exercises.registry import exercise


def _pair_counts(tokens: list[str], overlapping: bool) -> Counter:
    """How often each pair of neighbours occurs: at every position (``overlapping``, as
    slm_helpers.bpe counts: 'aaa' holds 'aa' twice), or as many times as a merge can join it
    ('aaa' holds it once). Only a pair of equal tokens differs."""
    counts = pair_counts(tokens)
    if not overlapping:
        for pair in [p for p in counts if p[0] == p[1]]:
            counts[pair] = len(tokens) - len(merge(tokens, pair, pair[0] + pair[1]))  # one fewer token per join
    return counts


def _replay(merges: list[tuple[str, str]], text: str, overlapping: bool) -> tuple[int, str]:
    """How many of ``merges`` in a row each join a most frequent pair, pairs counted one way,
    and the hint for the first that does not ("" when all do)."""
    tokens = list(text)
    for n, pair in enumerate(merges):
        counts = _pair_counts(tokens, overlapping)
        most = max(counts.values())
        if counts.get(pair, 0) != most:
            best = sorted("".join(p) for p, c in counts.items() if c == most)
            return n, (f"merge {n + 1}: {pair} occurs {counts.get(pair, 0)} time(s) in {tokens} (pairs counted "
                       f"{'with' if overlapping else 'without'} overlaps), but the most frequent pair occurs {most} "
                       f"times ({', '.join(best)})")
        tokens = merge(tokens, pair, pair[0] + pair[1])  # left to right, as BPE replaces
    return len(merges), ""


@exercise("01.1")
def _merges_by_hand(answer, text: str, merges: int = 3):
    """Replays the learner's merges: each must join a most frequent pair of the text as it then
    is (any of them, when several are equally frequent). Pairs may be counted with overlaps
    ('aaa' holds 'aa' twice, as slm_helpers.bpe counts) or without (once, as a merge joins it),
    one way for every merge."""
    answer = [tuple(pair) for pair in answer]
    if len(answer) != merges or not all(len(pair) == 2 and all(isinstance(s, str) for s in pair) for pair in answer):
        return False, f"give {merges} merges, each a pair of strings such as ('a', 'b')"
    replays = [_replay(answer, text, overlapping) for overlapping in (True, False)]
    right, hint = max(replays, key=lambda replay: replay[0])  # the counting the answer kept to longest
    return right == merges, hint


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
