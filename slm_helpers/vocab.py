"""A compact vocabulary: GPT-2's ids renumbered to the ones a dataset's stories use.

Why: a small model spends most of its compute in the output head, a ``vocab_size x n_embd``
matrix applied at every position. TinyStories uses a small part of GPT-2's 50,257 tokens
(the TinyStories paper trained on the 10K most frequent), and the built-in stories only a
few hundred. Keeping only those ids shrinks the head, and the embedding, by the same factor
(notebooks 01 and 07).

The text is still split by GPT-2's BPE; only the numbering changes. Compact id ``i`` stands
for GPT-2 id ``gpt2_ids[i]``, most frequent first; the last id, :attr:`unknown_id`, stands
for every GPT-2 id that was left out. ``<|endoftext|>`` is always kept. What is given up:
text with left-out tokens comes back with ``<unk>`` in their place.

A mapping is known by its :attr:`~CompactVocabulary.fingerprint`, a hash of its ids in
order: the dataset, the checkpoint and the weights file record it, so two mappings of the
same size (or one reordered by hand) are never taken for each other.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from slm_helpers.errors import TokenizerError

MAX_IDS = int(np.iinfo(np.uint16).max) + 1  # the bins store uint16
REDO = "prepare the dataset again with --overwrite"


class VocabularyError(TokenizerError):
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
                                  f"the mapping is damaged; {REDO}")

    @property
    def size(self) -> int:
        """The model's ``vocab_size``: the kept ids and the unknown id."""
        return len(self.gpt2_ids) + 1

    @property
    def unknown_id(self) -> int:
        return len(self.gpt2_ids)

    @functools.cached_property
    def fingerprint(self) -> str:
        """12 hex digits of a SHA-256 of the ids in order: equal only for the same mapping."""
        text = f"{self.gpt2_vocab_size}:" + ",".join(map(str, self.gpt2_ids))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

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
        return {"gpt2_ids": list(self.gpt2_ids), "gpt2_vocab_size": self.gpt2_vocab_size, "coverage": self.coverage,
                "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, saved: dict, where: str = "the mapping") -> CompactVocabulary:
        """The mapping ``to_dict`` wrote; a damaged one, or one whose ids no longer match its
        fingerprint (reordered or edited by hand), is a :class:`VocabularyError`."""
        try:
            vocabulary = cls(tuple(int(i) for i in saved["gpt2_ids"]), int(saved["gpt2_vocab_size"]),
                             dict(saved.get("coverage", {})))
        except VocabularyError as error:
            raise VocabularyError(f"{where}: {error}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise VocabularyError(f"{where} is not a compact vocabulary ({type(error).__name__}: {error}): "
                                  f"{REDO}") from None
        if saved.get("fingerprint", vocabulary.fingerprint) != vocabulary.fingerprint:
            raise VocabularyError(f"{where} has been changed since it was made (its ids no longer match its "
                                  f"fingerprint {saved['fingerprint']}): the ids would mean other tokens; {REDO}")
        return vocabulary


def build_vocabulary(train_counts: np.ndarray, eot_token: int, vocab_size: int | None = None,
                     reserved: Sequence[int] = ()) -> CompactVocabulary:
    """The compact vocabulary of a training split, from how often each GPT-2 id occurs in it.

    ``vocab_size=None`` keeps every id the split uses. A ``vocab_size`` K keeps exactly K - 1
    ids and maps the rest to the unknown id, so the model's ``vocab_size`` is exactly K.
    ``eot_token`` (it separates the stories) and the ``reserved`` ids (the request format's,
    which notebook 08 fine-tunes a model to read) are kept either way, in place of the rarest;
    the others are the most frequent. Ties go to the lower id, so the same data always gives
    the same mapping."""
    always = list(dict.fromkeys([eot_token, *reserved]))
    if vocab_size is not None and not len(always) + 1 <= vocab_size <= MAX_IDS:
        raise VocabularyError(f"vocab_size must be between {len(always) + 1} (the ids always kept and the unknown id) "
                              f"and {MAX_IDS:,} (the bins hold uint16), not {vocab_size}")
    order = np.lexsort((np.arange(len(train_counts)), -train_counts))  # most frequent first, then lower id
    pinned = set(always)
    frequent = [int(i) for i in order if train_counts[i] > 0 and int(i) not in pinned]
    room = len(frequent) if vocab_size is None else vocab_size - 1 - len(always)
    keep = set(frequent[:room]) | pinned
    kept = [int(i) for i in order if int(i) in keep]
    if len(kept) + 1 > MAX_IDS:
        raise VocabularyError(f"the training split uses {len(kept):,} distinct ids, more than uint16 holds with an "
                              f"unknown id: give a vocab_size of at most {MAX_IDS:,}")
    return CompactVocabulary(tuple(kept), len(train_counts))


def with_coverage(vocabulary: CompactVocabulary, counts: dict[str, np.ndarray]) -> CompactVocabulary:
    """The same vocabulary, recording for each split the share of its tokens it keeps."""
    kept = list(vocabulary.gpt2_ids)
    coverage = {split: float(c[kept].sum() / max(int(c.sum()), 1)) for split, c in counts.items()}
    return CompactVocabulary(vocabulary.gpt2_ids, vocabulary.gpt2_vocab_size, coverage)
