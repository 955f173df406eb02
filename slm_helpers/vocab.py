"""A compact vocabulary: GPT-2's tokenizer, with its ids renumbered to the ones a dataset uses.

Why: a small model spends most of its compute in the output head, a ``vocab_size x n_embd``
matrix applied at every position. TinyStories uses a small part of GPT-2's 50,257 tokens
(the TinyStories paper trained on the 10K most frequent), and the built-in stories only a
few hundred. Keeping only those ids shrinks the head, and the embedding, by the same factor;
notebook 07 measures what that buys.

The text is still split by GPT-2's BPE; only the numbering changes. Compact id ``i`` stands
for GPT-2 id ``gpt2_ids[i]``, most frequent first; the last id, :attr:`unknown_id`, stands
for every GPT-2 id that was left out. ``<|endoftext|>`` is always kept. What is given up:
text with left-out tokens comes back with ``<unk>`` in their place, and the model's ids are
no longer GPT-2's, so its weights do not fit GPT-2 tools without this mapping.

A compact dataset keeps its mapping in ``vocab.json`` next to ``meta.json``; training copies
it into the checkpoint, and :func:`slm_helpers.generate.load_model` reads it back.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VOCAB_FILE = "vocab.json"
UNKNOWN_TEXT = "<unk>"
MAX_IDS = int(np.iinfo(np.uint16).max) + 1  # the bins store uint16


class VocabularyError(ValueError):
    """A compact vocabulary that cannot be built, read or used; the message says what to do."""


@dataclass(frozen=True)
class CompactVocabulary:
    """The GPT-2 ids a model knows, in compact order, plus one id for all the others."""

    gpt2_ids: tuple[int, ...]  # compact id i stands for GPT-2 id gpt2_ids[i]
    gpt2_vocab_size: int  # 50,257: how many ids the lookup table covers
    coverage: dict[str, float] = field(default_factory=dict, compare=False)  # per split: share of tokens kept

    def __post_init__(self) -> None:
        ids = self.gpt2_ids
        if len(set(ids)) != len(ids) or any(not 0 <= i < self.gpt2_vocab_size for i in ids):
            raise VocabularyError(f"a compact vocabulary needs distinct GPT-2 ids in [0, {self.gpt2_vocab_size}): "
                                  "the mapping is damaged; prepare the dataset again with --overwrite")

    @property
    def size(self) -> int:
        """The model's ``vocab_size``: the kept ids and the unknown id."""
        return len(self.gpt2_ids) + 1

    @property
    def unknown_id(self) -> int:
        return len(self.gpt2_ids)

    @functools.cached_property
    def _to_compact(self) -> np.ndarray:
        table = np.full(self.gpt2_vocab_size, self.unknown_id, dtype=np.int64)
        table[list(self.gpt2_ids)] = np.arange(len(self.gpt2_ids))
        return table

    def to_compact(self, gpt2_ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """GPT-2 ids to compact ids; every left-out id becomes :attr:`unknown_id`."""
        return self._to_compact[np.asarray(gpt2_ids, dtype=np.int64)]

    def to_gpt2(self, compact_ids: Iterable[int]) -> list[int | None]:
        """Compact ids back to GPT-2 ids; the unknown id gives ``None`` (it has no GPT-2 id)."""
        return [self.gpt2_ids[i] if i != self.unknown_id else None for i in compact_ids]

    def to_dict(self) -> dict:
        return {"gpt2_ids": list(self.gpt2_ids), "gpt2_vocab_size": self.gpt2_vocab_size, "coverage": self.coverage}

    @classmethod
    def from_dict(cls, saved: dict, where: str = "the mapping") -> CompactVocabulary:
        try:
            return cls(tuple(int(i) for i in saved["gpt2_ids"]), int(saved["gpt2_vocab_size"]),
                       dict(saved.get("coverage", {})))
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, VocabularyError):
                raise VocabularyError(f"{where}: {error}") from None
            raise VocabularyError(f"{where} is not a compact vocabulary ({type(error).__name__}: {error}): prepare "
                                  "the dataset again with --overwrite") from None


def build_vocabulary(train_counts: np.ndarray, eot_token: int, vocab_size: int | None = None) -> CompactVocabulary:
    """The compact vocabulary of a training split, from how often each GPT-2 id occurs in it.

    ``vocab_size=None`` keeps every id the split uses. A ``vocab_size`` K keeps the K - 1 most
    frequent and maps the rest to the unknown id, so the model's ``vocab_size`` is exactly K.
    ``eot_token`` is kept either way: it separates the stories. Ties go to the lower id, so
    the same data always gives the same mapping."""
    used = int(np.count_nonzero(train_counts))
    if vocab_size is not None and not 2 <= vocab_size <= MAX_IDS:
        raise VocabularyError(f"vocab_size must be between 2 and {MAX_IDS:,} (the bins hold uint16), not {vocab_size}")
    keep = used if vocab_size is None else min(vocab_size - 1, used)
    order = np.lexsort((np.arange(len(train_counts)), -train_counts))  # most frequent first, then lower id
    kept = [int(i) for i in order[:keep] if train_counts[i] > 0]
    if eot_token not in kept:  # the story separator: always kept (with a size: in place of the rarest)
        full = vocab_size is not None and len(kept) == vocab_size - 1
        kept = kept[:-1] + [eot_token] if full else kept + [eot_token]
    if len(kept) + 1 > MAX_IDS:
        raise VocabularyError(f"the training split uses {len(kept):,} distinct ids, more than uint16 holds with an "
                              f"unknown id: give a vocab_size of at most {MAX_IDS:,}")
    return CompactVocabulary(tuple(kept), len(train_counts))


def with_coverage(vocabulary: CompactVocabulary, counts: dict[str, np.ndarray]) -> CompactVocabulary:
    """The same vocabulary, recording for each split the share of its tokens it keeps."""
    kept = list(vocabulary.gpt2_ids)
    coverage = {split: float(c[kept].sum() / max(int(c.sum()), 1)) for split, c in counts.items()}
    return CompactVocabulary(vocabulary.gpt2_ids, vocabulary.gpt2_vocab_size, coverage)


def save_vocabulary(vocabulary: CompactVocabulary, data_dir: str | os.PathLike) -> None:
    path = Path(data_dir) / VOCAB_FILE
    path.with_name(VOCAB_FILE + ".tmp").write_text(json.dumps(vocabulary.to_dict()))
    os.replace(path.with_name(VOCAB_FILE + ".tmp"), path)


def load_vocabulary(data_dir: str | os.PathLike) -> CompactVocabulary:
    path = Path(data_dir) / VOCAB_FILE
    if not path.is_file():
        raise VocabularyError(f"{path} is missing, though meta.json says the dataset has a compact vocabulary: "
                              "prepare the dataset again with --overwrite")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise VocabularyError(f"{path} is not valid JSON ({error}): prepare the dataset again with --overwrite") from None
    return CompactVocabulary.from_dict(saved, str(path))


class CompactTokenizer:
    """GPT-2's tokenizer speaking a compact vocabulary's ids: ``encode_ordinary``, ``decode``,
    ``decode_single_token_bytes``, ``eot_token`` and ``n_vocab`` as tiktoken's ``Encoding``
    has them, so generation code works with either."""

    def __init__(self, gpt2, vocabulary: CompactVocabulary):
        if gpt2.n_vocab != vocabulary.gpt2_vocab_size:
            raise VocabularyError(f"the mapping was made for a {vocabulary.gpt2_vocab_size:,}-id tokenizer, not "
                                  f"{gpt2.name} with {gpt2.n_vocab:,}")
        self.gpt2, self.vocabulary = gpt2, vocabulary
        self.name = f"{gpt2.name}-compact-{vocabulary.size}"
        self.n_vocab = vocabulary.size
        self.eot_token = int(vocabulary.to_compact([gpt2.eot_token])[0])

    def encode_ordinary(self, text: str) -> list[int]:
        return self.vocabulary.to_compact(self.gpt2.encode_ordinary(text)).tolist()

    def unknown_tokens(self, text: str) -> list[str]:
        """The GPT-2 tokens of ``text`` that the compact vocabulary left out."""
        ids = self.gpt2.encode_ordinary(text)
        unknown = self.vocabulary.to_compact(ids) == self.vocabulary.unknown_id
        return [self.gpt2.decode([i]) for i, u in zip(ids, unknown) if u]

    def decode_single_token_bytes(self, token: int) -> bytes:
        (gpt2_id,) = self.vocabulary.to_gpt2([token])
        return UNKNOWN_TEXT.encode() if gpt2_id is None else self.gpt2.decode_single_token_bytes(gpt2_id)

    def decode(self, tokens: Iterable[int]) -> str:
        return b"".join(self.decode_single_token_bytes(t) for t in tokens).decode("utf-8", errors="replace")


def tokenizer_for(vocabulary: CompactVocabulary | None):
    """The tokenizer that speaks a model's ids: GPT-2's own, or GPT-2's through ``vocabulary``."""
    from slm_helpers.tokenizer import get_tokenizer

    return get_tokenizer() if vocabulary is None else CompactTokenizer(get_tokenizer(), vocabulary)
