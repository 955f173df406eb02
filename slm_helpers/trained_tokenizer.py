"""A tokenizer of its own: byte-level BPE learned from the stories (notebook 09).

GPT-2's 50,257 ids were learned from web pages; TinyStories uses a few thousand of them, and
spends several on words GPT-2 never merged ("Lily's" is 3 tokens). A BPE learned from the
stories themselves, with a few thousand ids, writes them in about as many tokens with a head a
tenth the size: a step is cheaper, and each id is used often enough to be learned well.
llama2.c trains its TinyStories models on such vocabularies (512 to 4,096 ids).

The learning is Hugging Face ``tokenizers`` (a well-kept Rust library, the one behind
``tokenizer.json`` files), set up as GPT-2 is:

* GPT-2's pre-split (its regular expression: words with their leading space, numbers,
  punctuation, whitespace), so no merge crosses a word boundary;
* byte-level: the 256 byte values are the first ids, so every text, in any script, is written
  with no unknown id and decodes to exactly its bytes;
* ``<|endoftext|>`` as the one special token, which ordinary text never produces.

The learned tokenizer travels as :class:`TrainedTokenizer` (kind ``"trained"``): its
``tokenizer.json`` beside the dataset's files, and inside the record of each checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from slm_helpers.errors import TokenizerError, check_int
from slm_helpers.tokenizer import EOT_TEXT, Tokenizer

SMALLEST = 256 + 1  # the 256 bytes and <|endoftext|>
LARGEST = 1 << 16  # a dataset's files hold uint16


def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-level alphabet backwards: the printable character that stands for each
    byte in a token's text (``Ġ`` for a space) -> the byte."""
    from tokenizers.pre_tokenizers import ByteLevel

    # ByteLevel.alphabet() lists the 256 characters; their order is GPT-2's bytes_to_unicode.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    assert set(chars) == set(ByteLevel.alphabet())
    return chars


class TrainedTokenizer(Tokenizer):
    """A byte-level BPE learned from stories: ``n_vocab`` ids, ``<|endoftext|>`` among them.
    Build one with :func:`train_tokenizer`; :meth:`from_json` rebuilds a saved one."""

    kind = "trained"

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        self.hf.encode_special_tokens = True  # "<|endoftext|>" written in a story is ordinary text
        self.json = hf_tokenizer.to_str()
        self.n_vocab = hf_tokenizer.get_vocab_size(with_added_tokens=True)
        eot = hf_tokenizer.token_to_id(EOT_TEXT)
        if eot is None:
            raise TokenizerError(f"the tokenizer has no {EOT_TEXT} token: it was not made by train_tokenizer")
        self.eot_token = eot
        fingerprint = hashlib.blake2b(self.json.encode(), digest_size=6).hexdigest()
        self.name = f"bpe-{self.n_vocab}-{fingerprint}"
        byte_of = _byte_of_char()
        self._bytes = [b""] * self.n_vocab
        for token, i in hf_tokenizer.get_vocab(with_added_tokens=True).items():
            self._bytes[i] = EOT_TEXT.encode() if i == eot else bytes(byte_of[c] for c in token)

    @classmethod
    def from_json(cls, text: str, where: str = "the tokenizer") -> TrainedTokenizer:
        """The tokenizer a ``tokenizer.json`` text describes."""
        return _from_json(text, where)

    @classmethod
    def load(cls, path: str | Path) -> TrainedTokenizer:
        """The tokenizer saved in the file ``path`` (a ``tokenizer.json``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TokenizerError(f"cannot read the tokenizer {path} ({error}): prepare the dataset again with "
                                 "--overwrite") from None
        return cls.from_json(text, str(path))

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` to ``path`` (also what ``transformers`` reads)."""
        from slm_helpers.folders import write_atomically

        write_atomically(Path(path), lambda f: f.write(self.json.encode()))

    def __reduce__(self):  # worker processes get it as its text
        return _from_json, (self.json, "a worker's tokenizer")

    def _encode_text(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_stories(self, stories: list[str]) -> np.ndarray:
        """Every story's ids and its ``<|endoftext|>``, the stories encoded in parallel threads."""
        encoded = self.hf.encode_batch(stories, add_special_tokens=False)
        ids = [i for e in encoded for i in (*e.ids, self.eot_token)]
        return np.array(ids, dtype=np.uint16)

    def decode_single_token_bytes(self, token: int) -> bytes:
        self._check_ids([token])
        return self._bytes[token]

    def decode_bytes(self, tokens: Iterable[int]) -> bytes:
        ids = [int(t) for t in tokens]  # a generator is read once: the check needs the ids again
        self._check_ids(ids)
        return b"".join(self._bytes[t] for t in ids)

    def _check_ids(self, ids: list[int]) -> None:
        if bad := [t for t in ids if not 0 <= t < self.n_vocab]:
            raise TokenizerError(f"token {bad[0]} is not an id of {self.name} (0 to {self.n_vocab - 1})")

    def tokens_of(self, text: str) -> list[str]:
        """The pieces ``text`` is cut into, as text (notebook 09 prints them)."""
        return [self.decode_single_token_bytes(i).decode("utf-8", errors="replace") for i in self._encode_text(text)]

    def _record_fields(self) -> dict:
        return {"tokenizer_json": self.json}

    def to_hf(self):
        """Itself: it is a ``tokenizers`` tokenizer already (a fresh copy, which recognises
        ``<|endoftext|>`` written in a text as the special token, as ``transformers`` expects)."""
        from tokenizers import Tokenizer as HFTokenizer

        return HFTokenizer.from_str(self.json)

    @classmethod
    def _from_record_fields(cls, record: dict, where: str) -> TrainedTokenizer:
        if not isinstance(record.get("tokenizer_json"), str):
            raise TokenizerError(f"{where} names the trained tokenizer {record['name']!r} but holds no tokenizer_json: "
                                 "the file has been changed; write it again")
        return cls.from_json(record["tokenizer_json"], where)


@functools.lru_cache(maxsize=4)
def _from_json(text: str, where: str) -> TrainedTokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    try:
        hf = HFTokenizer.from_str(text)
    except Exception as error:  # tokenizers raises its own Exception subclass
        raise TokenizerError(f"{where} is not a tokenizer.json that tokenizers can read ({str(error)[:80]}): "
                             "prepare the dataset again with --overwrite") from None
    return TrainedTokenizer(hf)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> TrainedTokenizer:
    """Learn a byte-level BPE of ``vocab_size`` ids (the 256 bytes, ``<|endoftext|>`` and the
    merges) from ``texts``, with GPT-2's pre-split. The same texts give the same tokenizer.
    Texts of few distinct words run out of merges sooner (a merge never crosses a word): the
    tokenizer then has fewer ids, every word one of them, and its ``n_vocab`` says how many."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    check_int("vocab_size", vocab_size, SMALLEST, TokenizerError)
    if vocab_size > LARGEST:
        raise TokenizerError(f"vocab_size must be at most {LARGEST:,} (a dataset's files hold uint16), not "
                             f"{vocab_size:,}")
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # GPT-2's split
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(texts, trainer)
    return TrainedTokenizer(hf)


def describe(tokenizer: TrainedTokenizer) -> str:
    """One line: its size and the longest tokens it learned."""
    longest = sorted((b for i, b in enumerate(tokenizer._bytes) if i != tokenizer.eot_token), key=len)[-5:]
    return (f"{tokenizer.name}: {tokenizer.n_vocab:,} ids; longest tokens "
            f"{', '.join(json.dumps(b.decode('utf-8', 'replace')) for b in reversed(longest))}")
