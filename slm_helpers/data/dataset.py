"""A prepared dataset, opened once: its files checked, its tokenizer known, batches handed out.

A dataset folder holds

* ``train.bin`` and ``validation.bin``: every story's token ids followed by
  ``<|endoftext|>``, one after another, as raw little-endian uint16 (2 bytes a token: GPT-2's
  50,257 ids fit under 65,536, and half the bytes of int32);
* ``meta.json``: where the stories came from, how many tokens, stories and bytes of text each
  split holds, and the name of the tokenizer whose ids the files hold;
* ``vocab.json``, for a compact vocabulary: the mapping from its ids to GPT-2's;
* ``tokenizer.json``, for a tokenizer trained on the stories (:mod:`slm_helpers.trained_tokenizer`).

:meth:`TokenDataset.open` reads ``meta.json`` (and ``vocab.json``) once and checks every file
against it; the object then hands out batches without reading either again. The training
loop takes this object, or anything with the same ``batch`` method.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from slm_helpers.errors import DataError, check_int
from slm_helpers.tokenizer import GPT2, GPT2Tokenizer, Tokenizer
from slm_helpers.vocab import CompactVocabulary, VocabularyError

SPLITS = ("train", "validation")
TOKEN_DTYPE = np.uint16
META_FILE = "meta.json"
VOCAB_FILE = "vocab.json"
TOKENIZER_FILE = "tokenizer.json"
VOCABS = ("full", "compact", "trained")
# 2: splits count their bytes of text; the tokenizer is named with its mapping's fingerprint.
# 3: a compact vocabulary keeps the ids of notebook 08's request format (a full one is unchanged).
FORMAT_VERSION = 3
REDO = "prepare the dataset again with --overwrite (overwrite=True)"


@dataclass
class SplitInfo:
    file: str
    tokens: int
    stories: int
    bytes: int = 0  # UTF-8 bytes of the stories' text (what bits per byte divide by)


@dataclass
class DatasetInfo:
    """What a prepared dataset folder holds: the content of its ``meta.json``."""

    source: str
    source_options: dict
    tokenizer: str  # the Tokenizer's name: "gpt2", or "gpt2-compact-<size>-<fingerprint>"
    n_vocab: int
    eot_token: int
    dtype: str
    splits: dict[str, SplitInfo]
    format_version: int = FORMAT_VERSION
    vocab: str = "full"  # "full": GPT-2's ids; "compact": renumbered, mapping in vocab.json; "trained": tokenizer.json
    vocab_size_asked: int | None = None  # compact: the size asked for (None: every id used); trained: its size
    path: str = field(default="", compare=False)

    def describe(self) -> str:
        vocab = {"full": GPT2, "compact": f"{GPT2}, compact vocabulary of {self.n_vocab:,} ids",
                 "trained": f"a tokenizer of {self.n_vocab:,} ids trained on its stories"}[self.vocab]
        lines = [f"dataset from {self.source!r} ({vocab}, {self.dtype}):"]
        if self.source_options.get("development"):
            lines[0] += " its validation split is the development split, 1 in 25 training stories"
        for split in self.splits.values():
            megabytes = split.tokens * np.dtype(self.dtype).itemsize / 1e6
            lines.append(f"  {split.file:<15} {split.stories:>10,} stories {split.tokens:>13,} tokens "
                         f"{megabytes:>9.2f} MB")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "path"}, indent=2)


REQUIRED = ("source", "source_options", "tokenizer", "n_vocab", "eot_token", "dtype", "splits")


def read_info(data_dir: str | os.PathLike) -> DatasetInfo | None:
    """The dataset described by ``data_dir/meta.json``, or ``None`` if there is none. A
    ``meta.json`` that cannot be read is a :class:`DataError` naming the file."""
    meta_path = Path(data_dir) / META_FILE
    if not meta_path.is_file():
        return None
    damaged = "the dataset is damaged: prepare it again with --overwrite (overwrite=True)"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{meta_path} is not valid JSON ({error}): {damaged}") from None
    missing = [name for name in REQUIRED if not isinstance(meta, dict) or name not in meta]
    if missing:
        raise DataError(f"{meta_path} lacks {', '.join(missing)}: {damaged}")
    try:
        meta["splits"] = {name: SplitInfo(**meta["splits"][name]) for name in SPLITS}
        info = DatasetInfo(**meta, path=str(Path(data_dir)))
        np.dtype(info.dtype)
        if info.vocab not in VOCABS:
            raise TypeError(f"vocab {info.vocab!r} is not one of {', '.join(VOCABS)}")
    except (KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{meta_path} does not describe both splits ({type(error).__name__}: {error}): "
                        f"{damaged}") from None
    return info


def _check_files(info: DatasetInfo) -> None:
    """Each split's file holds as many tokens as ``meta.json`` says (a copy cut short, or a
    file replaced by hand, is caught here rather than read as data)."""
    itemsize = np.dtype(info.dtype).itemsize
    for split in info.splits.values():
        path = Path(info.path) / split.file
        if not path.is_file():
            raise DataError(f"{path} is missing, though {META_FILE} lists it: {REDO}")
        size = path.stat().st_size
        if size % itemsize:
            raise DataError(f"{path} is {size:,} bytes, not a whole number of {itemsize}-byte tokens: the file is "
                            f"damaged; {REDO}")
        if size != split.tokens * itemsize:
            raise DataError(f"{path} holds {size // itemsize:,} tokens but {META_FILE} says {split.tokens:,}: the file "
                            f"is damaged or cut short; prepare the dataset again with --overwrite (overwrite=True)")


def _read_tokenizer(info: DatasetInfo) -> Tokenizer:
    """The tokenizer ``meta.json`` names, rebuilt and checked: a compact dataset's mapping
    must be the one it was made with (``vocab.json`` replaced or reordered is refused)."""
    folder = Path(info.path)
    if info.vocab == "trained":
        from slm_helpers.trained_tokenizer import TrainedTokenizer

        path = folder / TOKENIZER_FILE
        if not path.is_file():
            raise DataError(f"{path} is missing, though meta.json says the dataset has a tokenizer of its own: {REDO}")
        return _same_as_meta(TrainedTokenizer.load(path), info)
    if info.tokenizer != GPT2 and not info.tokenizer.startswith(f"{GPT2}-compact-"):
        raise DataError(f"{folder} was tokenized with {info.tokenizer!r}, but this series trains on GPT-2 ids: "
                        "prepare the dataset again with slm_helpers.data")
    if info.format_version < FORMAT_VERSION and info.vocab != "full":
        raise DataError(f"{folder} was prepared by an older version of slm_helpers (meta.json format "
                        f"{info.format_version}; a compact vocabulary now keeps the ids that notebook 08's requests "
                        f"need): {REDO}")
    if info.vocab == "full":
        tokenizer = GPT2Tokenizer()
    else:
        path = folder / VOCAB_FILE
        if not path.is_file():
            raise VocabularyError(f"{path} is missing, though meta.json says the dataset has a compact vocabulary: "
                                  "prepare the dataset again with --overwrite")
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise VocabularyError(f"{path} is not valid JSON ({error}): prepare the dataset again with "
                                  "--overwrite") from None
        tokenizer = GPT2Tokenizer(CompactVocabulary.from_dict(saved, str(path)))
    return _same_as_meta(tokenizer, info)


def _same_as_meta(tokenizer: Tokenizer, info: DatasetInfo) -> Tokenizer:
    """``tokenizer``, if it is the one ``meta.json`` names (else a :class:`DataError`)."""
    folder = Path(info.path)
    if tokenizer.name != info.tokenizer or tokenizer.n_vocab != info.n_vocab or tokenizer.eot_token != info.eot_token:
        found = f"{tokenizer.name} ({tokenizer.n_vocab:,} ids, <|endoftext|> = {tokenizer.eot_token})"
        said = f"{info.tokenizer} ({info.n_vocab:,} ids, <|endoftext|> = {info.eot_token})"
        raise DataError(f"{folder}: {META_FILE} says the tokens are ids of {said}, but the files give {found}: one of "
                        f"them was edited or copied from another dataset; {REDO}")
    return tokenizer


def _count_bytes(info: DatasetInfo, tokenizer: Tokenizer, log) -> DatasetInfo:
    """``info`` with each split's bytes of text, counted by decoding its tokens (GPT-2's BPE
    decodes to exactly the bytes it encoded), and recorded in ``meta.json`` when it can be."""
    from slm_helpers.folders import write_atomically

    chunk = 1 << 20
    for split in info.splits.values():
        tokens = np.memmap(Path(info.path) / split.file, dtype=info.dtype, mode="r")
        split.bytes = sum(len(tokenizer.decode_bytes([t for t in tokens[i:i + chunk].tolist() if t != info.eot_token]))
                          for i in range(0, len(tokens), chunk))
    info.format_version = FORMAT_VERSION
    try:
        write_atomically(Path(info.path) / META_FILE, lambda f: f.write(info.to_json().encode()))
        log(f"{info.path} was prepared by an older version of slm_helpers: its bytes of text (for bits per byte) "
            f"are counted and recorded in its {META_FILE}")
    except OSError as error:
        log(f"{info.path} was prepared by an older version of slm_helpers: its bytes of text (for bits per byte) "
            f"are counted, but could not be recorded ({error.strerror}), so they are counted at every start")
    return info


@dataclass(frozen=True, eq=False)
class TokenDataset:
    """A prepared dataset: its description, its tokenizer, and random batches of its tokens."""

    path: Path
    info: DatasetInfo
    tokenizer: Tokenizer

    @classmethod
    def open(cls, folder: str | os.PathLike, log=print) -> TokenDataset:
        """Read ``folder``'s ``meta.json`` once and check every file against it."""
        if isinstance(folder, TokenDataset):
            return folder
        folder = Path(folder)
        info = read_info(folder)
        if info is None:
            raise DataError(f"{folder} holds no complete dataset (no {META_FILE}). Prepare one first, e.g. "
                            f"slm_helpers.data.prepare_dataset('synthetic', '{folder}'), python -m slm_helpers.data, "
                            "or notebook 01.")
        return cls.from_info(info, log)

    @classmethod
    def from_info(cls, info: DatasetInfo, log=print) -> TokenDataset:
        """The dataset ``info`` (a ``meta.json`` just read) describes, its files checked. A
        dataset of GPT-2's ids prepared by an older version, without the bytes of text that
        bits per byte need, gets them counted (from its tokens) and recorded, once."""
        _check_files(info)
        tokenizer = _read_tokenizer(info)
        if info.format_version < 2:  # before bits per byte
            info = _count_bytes(info, tokenizer, log)
        return cls(Path(info.path), info, tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.n_vocab

    def describe(self) -> str:
        return self.info.describe()

    def tokens(self, split: str) -> np.memmap:
        """The tokens of ``split`` as a read-only memmap (nothing is read into RAM yet)."""
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, not {split!r}")
        info = self.info.splits[split]
        return np.memmap(self.path / info.file, dtype=self.info.dtype, mode="r", shape=(info.tokens,))

    def with_train_tokens(self, tokens: int) -> TokenDataset:
        """The same dataset with its training split cut to its first ``tokens`` tokens (the
        validation split whole): a model trained on it sees the same few stories again and
        again, and memorises them (notebook 05 makes a run overfit this way)."""
        check_int("tokens", tokens, minimum=2)
        train = self.info.splits["train"]
        tokens = min(tokens, train.tokens)
        cut = SplitInfo(train.file, tokens, stories=int(np.count_nonzero(self.tokens("train")[:tokens]
                                                                           == self.tokenizer.eot_token)),
                        bytes=round(train.bytes * tokens / train.tokens))
        info = replace(self.info, splits={**self.info.splits, "train": cut})
        return replace(self, info=info)

    def batch(self, split: str, batch_size: int, block_size: int, generator=None, device="cpu"):
        """``batch_size`` random windows of ``block_size`` tokens from ``split``.

        Returns ``(x, y)``, int64 tensors of shape ``(batch_size, block_size)`` where ``y`` is
        ``x`` shifted left by one: at every position the model learns to predict the next
        token. The memmap is opened anew for every batch: a long-lived one indexed at random
        grows the process's resident memory over a long run (nanoGPT #287). ``generator`` (a
        ``torch.Generator``) makes the draw reproducible.
        """
        import torch

        check_int("batch_size", batch_size)
        check_int("block_size", block_size)
        tokens = self.tokens(split)
        if len(tokens) <= block_size:
            raise DataError(
                f"The {split} split holds {len(tokens):,} tokens, too few for windows of block_size={block_size} "
                f"(it needs at least {block_size + 1:,}). Prepare more stories or use a smaller block_size."
            )
        starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
        windows = np.stack([tokens[i : i + block_size + 1] for i in starts.tolist()]).astype(np.int64)
        batch = torch.from_numpy(windows)
        x, y = batch[:, :-1], batch[:, 1:]
        if str(device).startswith("cuda"):
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x.to(device), y.to(device)

    def bytes_per_token(self, split: str) -> float:
        """Bytes of story text per token in ``split`` (GPT-2's BPE: about 4 on TinyStories)."""
        info = self.info.splits[split]
        return info.bytes / info.tokens if info.tokens and info.bytes else math.nan

    def bits_per_byte(self, split: str, nats_per_token: float) -> float:
        """A loss in nats per token as bits per byte of ``split``'s text: comparable across
        tokenizers and vocabularies (a finer tokenizer has more tokens, each easier to guess)."""
        return nats_per_token / math.log(2) / self.bytes_per_token(split)

    def identity(self) -> dict:
        """What a checkpoint records of the data it was trained on, to refuse resuming on other
        data: the source and its options, each split's size, and the tokenizer."""
        return {"path": str(self.path), "source": self.info.source, "source_options": self.info.source_options,
                "tokenizer": self.tokenizer.name,
                "splits": {name: {"tokens": s.tokens, "stories": s.stories} for name, s in self.info.splits.items()}}


def load_tokens(data_dir: str | os.PathLike, split: str) -> np.memmap:
    """The tokens of ``split`` in ``data_dir`` as a read-only memmap (opens the dataset)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, not {split!r}")
    return TokenDataset.open(data_dir).tokens(split)


def get_batch(data_dir, split: str, batch_size: int, block_size: int, device: str = "cpu", generator=None):
    """:meth:`TokenDataset.batch` of the dataset in ``data_dir`` (a folder, or an opened
    :class:`TokenDataset`, which is not read again)."""
    check_int("batch_size", batch_size)
    check_int("block_size", block_size)
    return TokenDataset.open(data_dir).batch(split, batch_size, block_size, generator, device)
