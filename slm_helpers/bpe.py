"""Byte-pair encoding from scratch: how a tokenizer like GPT-2's is learned (notebook 01).

Start from the bytes of the text (256 possible ids: nothing is ever unknown). Count every
pair of neighbouring ids, give the most frequent pair a new id, replace it everywhere, and
repeat. Each merge is one new token; GPT-2 did 50,000 of them on web text. Encoding new text
replays the merges in the order they were learned; decoding concatenates the bytes each id
stands for, so the round trip is exact.

GPT-2's tokenizer adds one step this one leaves out: it first splits text into words,
numbers and punctuation (a regular expression), so no merge crosses a word boundary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from slm_helpers.errors import SlmError, check_int


def pair_counts(ids: Sequence[int]) -> Counter:
    """How often each pair of neighbouring ids occurs."""
    return Counter(zip(ids, ids[1:]))


def merge(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` replaced by ``new_id``, left to right."""
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


@dataclass
class BytePairTokenizer:
    """A byte-level BPE tokenizer: ids 0-255 are bytes, each later id one learned merge."""

    merges: dict[tuple[int, int], int] = field(default_factory=dict)  # in the order they were learned
    vocab: dict[int, bytes] = field(default_factory=lambda: {i: bytes([i]) for i in range(256)})

    @classmethod
    def train(cls, text: str, num_merges: int, log=None) -> BytePairTokenizer:
        """Learn ``num_merges`` merges from ``text``; ``log`` (e.g. ``print``) receives a line
        per merge: the new token, the two it joins, and how often the pair occurred."""
        check_int("num_merges", num_merges, minimum=0)
        if not isinstance(text, str) or not text:
            raise SlmError("text must be some non-empty text (a str) to learn merges from")
        tokenizer, ids = cls(), list(text.encode("utf-8"))
        for _ in range(num_merges):
            counts = pair_counts(ids)
            if not counts:
                break  # the whole text is one token
            pair, count = max(counts.items(), key=lambda item: item[1])  # ties: the pair seen first
            new_id = 256 + len(tokenizer.merges)
            tokenizer.merges[pair] = new_id
            tokenizer.vocab[new_id] = tokenizer.vocab[pair[0]] + tokenizer.vocab[pair[1]]
            ids = merge(ids, pair, new_id)
            if log is not None:
                log(f"merge {len(tokenizer.merges):>3}: {tokenizer.show(pair[0])} + {tokenizer.show(pair[1])} -> "
                    f"{tokenizer.show(new_id)} (id {new_id}, seen {count:,} times); the text is now {len(ids):,} ids")
        return tokenizer

    @property
    def size(self) -> int:
        return len(self.vocab)

    def show(self, token: int) -> str:
        """A token as text, with its spaces visible (``·``)."""
        return repr(self.vocab[token].decode("utf-8", errors="replace").replace(" ", "·"))

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``: its bytes, then every merge that applies, earliest learned first."""
        ids = list(text.encode("utf-8"))
        while len(ids) > 1:
            learned = [pair for pair in pair_counts(ids) if pair in self.merges]
            if not learned:
                break
            first = min(learned, key=self.merges.__getitem__)
            ids = merge(ids, first, self.merges[first])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """The same as :meth:`encode` (this tokenizer has no special tokens): the name the
        series' other tokenizers and ``plots.show_tokens`` use."""
        return self.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")
