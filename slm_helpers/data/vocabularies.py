"""How each kind of vocabulary is made from a dataset's training stories, for
:func:`~slm_helpers.data.prepare.prepare_dataset`:

* ``"full"``: GPT-2's 50,257 ids, nothing to make;
* ``"compact"`` (:mod:`slm_helpers.vocab`): the stories are tokenized with GPT-2's ids first,
  then :func:`renumber` counts the training split's ids and rewrites both splits in the
  compact ids, keeping the request format's (:func:`reserved_ids`);
* ``"trained"`` (:mod:`slm_helpers.trained_tokenizer`): :func:`learn_tokenizer` learns a BPE
  from the training split's first stories before anything is tokenized.

:func:`check_vocab_options` refuses a vocabulary and size that do not go together, before any
story is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from slm_helpers.data.dataset import SPLITS, TOKEN_DTYPE, VOCABS
from slm_helpers.data.sources import open_source, split_of
from slm_helpers.errors import DataError, check_int
from slm_helpers.instruct import format_text
from slm_helpers.tokenizer import Tokenizer, get_tokenizer
from slm_helpers.vocab import MAX_IDS, CompactVocabulary, build_vocabulary, with_coverage

TOKENIZER_STORIES = 100_000  # a trained tokenizer learns from the first (of the train split): ~80 MB of text
RENUMBER_CHUNK = 1 << 24  # tokens renumbered at a time: 16M uint16 = 32 MB


def check_vocab_options(vocab: str, vocab_size: int | None) -> None:
    if vocab not in VOCABS:
        raise DataError(f"vocab must be one of {', '.join(VOCABS)}, not {vocab!r}")
    if vocab == "trained":
        from slm_helpers.trained_tokenizer import LARGEST, SMALLEST

        if vocab_size is None or not isinstance(vocab_size, int) or not SMALLEST <= vocab_size <= LARGEST:
            raise DataError(f"vocab='trained' (--vocab trained) needs vocab_size (--vocab-size) between {SMALLEST} "
                            f"(the 256 bytes and <|endoftext|>) and {LARGEST:,} (the bins hold uint16), e.g. 4096; "
                            f"not {vocab_size!r}")
        return
    if vocab_size is not None:
        if vocab != "compact":
            raise DataError("vocab_size (--vocab-size) is for vocab='compact' or 'trained' (--vocab compact, --vocab "
                            "trained); the full vocabulary is GPT-2's 50,257 ids")
        check_int("vocab_size", vocab_size, 1, DataError)
        smallest = len(reserved_ids()) + 1  # with the unknown id
        if not smallest <= vocab_size <= MAX_IDS:
            raise DataError(f"vocab_size must be between {smallest} (the ids always kept, the request format's and "
                            f"<|endoftext|>, and the unknown id) and {MAX_IDS:,} (the bins hold uint16), not "
                            f"{vocab_size:,}")


def reserved_ids() -> list[int]:
    """The GPT-2 ids a compact vocabulary keeps even when its stories never use them: the
    request format's (:func:`slm_helpers.instruct.format_text`), so a model trained on these
    stories can be fine-tuned to read requests (notebook 08)."""
    return sorted(set(get_tokenizer().encode_ordinary(format_text())))


def renumber(out_dir: Path, vocab_size: int | None, log: Callable[[str], None]) -> CompactVocabulary:
    """Count the training split's ids, build the compact vocabulary, and rewrite both splits'
    ``*.bin.tmp`` files in compact ids, a chunk at a time (memory stays flat)."""
    gpt2 = get_tokenizer()
    counts = {}
    for split in SPLITS:
        tokens = np.memmap(out_dir / f"{split}.bin.tmp", dtype=TOKEN_DTYPE, mode="r")
        counts[split] = sum((np.bincount(tokens[i : i + RENUMBER_CHUNK], minlength=gpt2.n_vocab)
                             for i in range(0, len(tokens), RENUMBER_CHUNK)), np.zeros(gpt2.n_vocab, np.int64))
    reserved = reserved_ids()
    vocabulary = with_coverage(build_vocabulary(counts["train"], gpt2.eot_token, vocab_size, reserved), counts)
    for split in SPLITS:
        tokens = np.memmap(out_dir / f"{split}.bin.tmp", dtype=TOKEN_DTYPE, mode="r+")
        for i in range(0, len(tokens), RENUMBER_CHUNK):
            tokens[i : i + RENUMBER_CHUNK] = vocabulary.to_compact(tokens[i : i + RENUMBER_CHUNK])
        tokens.flush()
        del tokens
    unused = sum(counts["train"][i] == 0 for i in set(reserved))
    log(f"compact vocabulary: {vocabulary.size:,} ids ({len(vocabulary.gpt2_ids) - unused:,} GPT-2 ids of the stories, "
        f"{unused} more of the request format and one unknown id) "
        f"cover {vocabulary.coverage['train']:.2%} of the training tokens and "
        f"{vocabulary.coverage['validation']:.2%} of the validation tokens")
    return vocabulary


def learn_tokenizer(source, source_options: dict, vocab_size: int, log) -> Tokenizer:
    """A tokenizer of ``vocab_size`` ids learned from the first ``TOKENIZER_STORIES`` stories of
    the training split (a pass over the source of its own, before the one that tokenizes)."""
    from slm_helpers.trained_tokenizer import describe, train_tokenizer

    streams = open_source(source, log=lambda _: None, **source_options)
    stories = (story for stream, texts in streams.items() for story in texts if split_of(stream, story) == "train")
    stories = list(itertools.islice(stories, TOKENIZER_STORIES))
    log(f"learning a tokenizer of {vocab_size:,} ids from {len(stories):,} training stories (a few seconds)")
    tokenizer = train_tokenizer(stories, vocab_size)
    if tokenizer.n_vocab < vocab_size:
        log(f"the stories ran out of merges at {tokenizer.n_vocab:,} ids (every word of theirs is one token): the "
            f"tokenizer has {tokenizer.n_vocab:,} ids, not {vocab_size:,}")
    log(describe(tokenizer))
    return tokenizer
