"""The tokenizer: what turns a story into the ids a model reads, and back.

:class:`Tokenizer` is the interface every kind speaks (tiktoken's method names:
``encode_ordinary``, ``encode``, ``decode``, ``decode_single_token_bytes``, ``n_vocab``,
``eot_token``), and one thing that travels: the dataset records it in ``meta.json``, training
copies its :meth:`~Tokenizer.record` into the checkpoint and the weights file, and
:func:`slm_helpers.checkpoint.load_model` returns it with the model. A record names its
``kind``, and :meth:`Tokenizer.from_record` rebuilds any kind from it: a new kind of tokenizer is
one class that registers itself, nowhere else.

Two kinds:

* ``"gpt2"`` (:class:`GPT2Tokenizer`, here): OpenAI's GPT-2 encoding through tiktoken, 50,257
  ids, with ``<|endoftext|>`` = 50256 marking where one story ends and the next begins; or
  those ids renumbered to the few thousand a dataset's stories use (a compact vocabulary,
  :mod:`slm_helpers.vocab`).
* ``"trained"`` (:class:`slm_helpers.trained_tokenizer.TrainedTokenizer`): a byte-level BPE
  learned from the stories themselves with Hugging Face ``tokenizers`` (notebook 09).

Its :attr:`~Tokenizer.name` (``"gpt2"``, ``"gpt2-compact-658-1a2b3c4d5e6f"``,
``"bpe-4096-1a2b3c4d5e6f"``, with a fingerprint of the mapping) is what a model's configuration
names, so ids of one tokenizer are never read by a model of another.

``tiktoken.get_encoding("gpt2")`` downloads its files on first use. Machines without
internet (CI, an air-gapped lab) can point the environment variable ``SLM_GPT2_TIKTOKEN``
at a local copy of the ranks file; the encoding built from it is identical, id for id.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np
import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

from slm_helpers.errors import TokenizerError
from slm_helpers.vocab import CompactVocabulary, VocabularyError

RANKS_FILE_ENV = "SLM_GPT2_TIKTOKEN"
GPT2 = "gpt2"
GPT2_N_VOCAB = 50257
EOT_TOKEN_ID = 50256
UNKNOWN_TEXT = "<unk>"
EOT_TEXT = ENDOFTEXT  # "<|endoftext|>"
# Where each kind of tokenizer lives ("module:class"), imported only when a record names it.
KINDS = {"gpt2": "slm_helpers.tokenizer:GPT2Tokenizer", "trained": "slm_helpers.trained_tokenizer:TrainedTokenizer"}

HOW_TO_GET_RANKS = (
    f"online, unset {RANKS_FILE_ENV} and tiktoken downloads its files; offline, set {RANKS_FILE_ENV} to a GPT-2 ranks "
    "file, which anyone rebuilds from PyPI: `pip download --no-deps --no-binary :all: openai-whisper==20250625`, "
    "then take openai_whisper-20250625/whisper/assets/gpt2.tiktoken from the archive (README.md, 'Without internet')"
)


class TokenizerUnavailableError(TokenizerError):
    """The GPT-2 encoding could neither be downloaded nor built from a local file."""


def gpt2_from_ranks_file(path: str | os.PathLike) -> tiktoken.Encoding:
    """Build tiktoken's GPT-2 encoding from a local ``gpt2.tiktoken`` ranks file.

    This is exactly what ``tiktoken.get_encoding("gpt2")`` builds, minus the download:
    the same ranks, the same split pattern and the same special token.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TokenizerUnavailableError(f"{RANKS_FILE_ENV} points at {path}, which is not a file: {HOW_TO_GET_RANKS}")
    try:
        ranks = load_tiktoken_bpe(str(path))
    except Exception as error:  # binascii.Error, ValueError, UnicodeDecodeError...: not 'base64 rank' lines
        raise TokenizerUnavailableError(
            f"{RANKS_FILE_ENV} points at {path}, which is not a GPT-2 ranks file ({type(error).__name__}: its lines "
            f"should be 'base64-token rank'): {HOW_TO_GET_RANKS}"
        ) from None
    if len(ranks) != EOT_TOKEN_ID:
        raise TokenizerUnavailableError(
            f"{RANKS_FILE_ENV} points at {path}, which holds {len(ranks)} ranks where GPT-2 has {EOT_TOKEN_ID}: "
            f"{HOW_TO_GET_RANKS}"
        )
    return tiktoken.Encoding(name=GPT2, pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: EOT_TOKEN_ID}, explicit_n_vocab=GPT2_N_VOCAB)


def _gpt2_encoding() -> tiktoken.Encoding:
    ranks_file = os.environ.get(RANKS_FILE_ENV)
    if ranks_file:
        return gpt2_from_ranks_file(ranks_file)
    try:
        return tiktoken.get_encoding(GPT2)
    except Exception as error:  # requests' ConnectionError, a blocked proxy, a bad cache...
        raise TokenizerUnavailableError(
            f"could not download the GPT-2 tokenizer files ({type(error).__name__}): {HOW_TO_GET_RANKS}"
        ) from None


class TokenIds(list):
    """A list of token ids that remembers which tokenizer made them (``.tokenizer``, its name),
    so generation can refuse ids of another vocabulary. Otherwise a plain list."""

    def __init__(self, ids: Iterable[int], tokenizer: str):
        super().__init__(ids)
        self.tokenizer = tokenizer


class Tokenizer:
    """What every kind of tokenizer offers. A kind implements :meth:`_encode_text` (the ids of
    plain text, special tokens not recognised), :meth:`decode_single_token_bytes`, and its
    record's own fields (:meth:`_record_fields`, :meth:`_from_record_fields`); the rest is here."""

    kind: ClassVar[str]
    name: str
    n_vocab: int
    eot_token: int
    is_compact = False  # a compact vocabulary: some text becomes the unknown id
    unknown_id: int | None = None  # the id of text the tokenizer cannot write (a compact vocabulary's)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.n_vocab:,} ids)"

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    # --- what a kind implements
    def _encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode_single_token_bytes(self, token: int) -> bytes:
        raise NotImplementedError

    def _record_fields(self) -> dict:
        raise NotImplementedError

    @classmethod
    def _from_record_fields(cls, record: dict, where: str) -> Tokenizer:
        raise NotImplementedError

    def to_hf(self):
        """The same tokenizer as a Hugging Face ``tokenizers.Tokenizer`` (what a
        ``tokenizer.json`` holds and ``transformers`` loads), giving the same ids for the same
        text. It may know more ids than :attr:`n_vocab`: each of those stands for text this
        tokenizer writes as :attr:`unknown_id` (:mod:`slm_helpers.export`)."""
        raise NotImplementedError

    # --- the same for every kind
    def encode_ordinary(self, text: str) -> TokenIds:
        """The ids of ``text``; ``<|endoftext|>`` written in the text is ordinary text here."""
        return TokenIds(self._encode_text(text), self.name)

    def encode(self, text: str, allowed_special="all") -> TokenIds:
        """The ids of ``text``, where ``<|endoftext|>`` (the only special token) is special if
        ``allowed_special`` is ``"all"`` or holds it."""
        if allowed_special != "all" and EOT_TEXT not in allowed_special:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for i, part in enumerate(text.split(EOT_TEXT)):
            if i:
                ids.append(self.eot_token)
            ids += self._encode_text(part)
        return TokenIds(ids, self.name)

    def encode_stories(self, stories: list[str]) -> np.ndarray:
        """``encode_ordinary(story) + [eot]`` for every story, concatenated, as uint16 (what a
        dataset's files hold)."""
        ids: list[int] = []
        for story in stories:
            ids += self._encode_text(story)
            ids.append(self.eot_token)
        return np.array(ids, dtype=np.uint16)

    def unknown_tokens(self, text: str) -> list[str]:
        """The pieces of ``text`` this tokenizer cannot write but as an unknown id (none for a
        tokenizer that writes every byte)."""
        return []

    def decode_bytes(self, tokens: Iterable[int]) -> bytes:
        return b"".join(self.decode_single_token_bytes(int(t)) for t in tokens)

    def decode(self, tokens: Iterable[int]) -> str:
        return self.decode_bytes(tokens).decode("utf-8", errors="replace")

    def record(self) -> dict:
        """What a dataset, checkpoint or weights file stores to rebuild this tokenizer."""
        return {"kind": self.kind, "name": self.name, **self._record_fields()}

    @staticmethod
    def from_record(record, where: str) -> Tokenizer:
        """The tokenizer :meth:`record` described, of whichever kind it names (a record from
        before kinds were recorded is GPT-2's); a record that does not rebuild the tokenizer it
        names (a damaged or hand-edited mapping) is a :class:`TokenizerError`."""
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise TokenizerError(f"{where} holds no tokenizer record (a kind, a name and its mapping): it was not "
                                 "written by this version of slm_helpers")
        kind = record.get("kind", "gpt2")
        if kind not in KINDS:
            raise TokenizerError(f"{where} holds a tokenizer of the kind {kind!r}, which this version does not know "
                                 f"(it knows {', '.join(map(repr, KINDS))}): update slm_helpers")
        module, cls = KINDS[kind].split(":")
        tokenizer = getattr(importlib.import_module(module), cls)._from_record_fields(record, where)
        if tokenizer.name != record["name"]:
            raise TokenizerError(f"{where} names the tokenizer {record['name']!r}, but its mapping is "
                                 f"{tokenizer.name!r}: the file has been changed; write it again")
        return tokenizer

    def check_speaks(self, name: str, what: str) -> None:
        """Refuse to pair this tokenizer with ``what`` (a model, a dataset) that reads the ids of
        the tokenizer called ``name``: the same id would mean another token."""
        if name != self.name:
            raise TokenizerError(f"{what} reads the ids of the tokenizer {name!r}, but this tokenizer is "
                                 f"{self.name!r}: use the tokenizer that load_model returns with the model")


class GPT2Tokenizer(Tokenizer):
    """GPT-2's BPE speaking the ids a model reads: all 50,257 of GPT-2's, or those of a
    compact ``vocabulary``."""

    kind = "gpt2"

    def __init__(self, vocabulary: CompactVocabulary | None = None):
        self.vocabulary = vocabulary
        if vocabulary is None:
            self.name, self.n_vocab, self.eot_token = GPT2, GPT2_N_VOCAB, EOT_TOKEN_ID
        else:
            if vocabulary.gpt2_vocab_size != GPT2_N_VOCAB:
                raise VocabularyError(f"the mapping was made for a {vocabulary.gpt2_vocab_size:,}-id tokenizer, not "
                                      f"GPT-2's {GPT2_N_VOCAB:,}")
            self.name = f"{GPT2}-compact-{vocabulary.size}-{vocabulary.fingerprint}"
            self.n_vocab = vocabulary.size
            self.eot_token = int(vocabulary.to_compact([EOT_TOKEN_ID])[0])

    @property
    def encoding(self) -> tiktoken.Encoding:
        """tiktoken's GPT-2 encoding underneath (loaded on first use)."""
        return _cached_gpt2_encoding()

    @property
    def is_compact(self) -> bool:
        return self.vocabulary is not None

    @property
    def unknown_id(self) -> int | None:
        return None if self.vocabulary is None else self.vocabulary.unknown_id

    def _from_gpt2(self, gpt2_ids) -> list[int]:
        return list(gpt2_ids) if self.vocabulary is None else self.vocabulary.to_compact(gpt2_ids).tolist()

    def _encode_text(self, text: str) -> list[int]:
        return self._from_gpt2(self.encoding.encode_ordinary(text))

    def encode(self, text: str, allowed_special="all") -> TokenIds:
        return TokenIds(self._from_gpt2(self.encoding.encode(text, allowed_special=allowed_special)), self.name)

    def encode_stories(self, stories: list[str]) -> np.ndarray:
        """GPT-2's ids of every story and its ``<|endoftext|>`` (always GPT-2's own: a compact
        dataset renumbers its files once they are written). Fast path: join the stories with
        ``<|endoftext|>`` and encode once with only that special token allowed; tiktoken encodes
        the text between special tokens separately, so the ids are those of story by story. A
        story that itself holds the text "<|endoftext|>" must not be split there, so such
        chunks take the story-by-story path."""
        if self.vocabulary is not None:
            raise VocabularyError("encode_stories writes GPT-2's own ids; a compact vocabulary renumbers them after")
        if not any(EOT_TEXT in story for story in stories):
            joined = EOT_TEXT.join(stories) + EOT_TEXT
            return self.encoding.encode_to_numpy(joined, allowed_special={EOT_TEXT}).astype(np.uint16)
        return super().encode_stories(stories)

    def unknown_tokens(self, text: str) -> list[str]:
        """The GPT-2 tokens of ``text`` that a compact vocabulary left out (none for GPT-2's own)."""
        if self.vocabulary is None:
            return []
        ids = self.encoding.encode_ordinary(text)
        unknown = self.vocabulary.to_compact(ids) == self.vocabulary.unknown_id
        return [self.encoding.decode([i]) for i, u in zip(ids, unknown) if u]

    def decode_single_token_bytes(self, token: int) -> bytes:
        if self.vocabulary is None:
            return self.encoding.decode_single_token_bytes(token)
        (gpt2_id,) = self.vocabulary.to_gpt2([token])
        return UNKNOWN_TEXT.encode() if gpt2_id is None else self.encoding.decode_single_token_bytes(gpt2_id)

    def _record_fields(self) -> dict:
        return {"vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict()}

    def to_hf(self):
        """GPT-2's BPE as ``tokenizers`` holds it, converted from tiktoken's ranks by
        ``transformers``' own converter (needs ``pip install -e .[export]``).

        A compact vocabulary renumbers it. BPE merges tokens by their ids, so the left-out
        tokens cannot all share the unknown id (their merges would mix): each keeps an id of its
        own after the model's, from :attr:`n_vocab` on, in GPT-2's order; every kept token has
        its compact id, and ``<unk>`` is the unknown id. An exported model reads every left-out
        id as the unknown id, and never writes one."""
        from tokenizers import Tokenizer as HFTokenizer
        from transformers.convert_slow_tokenizer import TikTokenConverter

        ranks = self.encoding._mergeable_ranks

        class FromRanks(TikTokenConverter):  # the ranks in memory, not a file: they may have been downloaded
            def load_tiktoken_bpe(self, url):
                return ranks

        hf = FromRanks(pattern=self.encoding._pat_str, extra_special_tokens={EOT_TEXT: EOT_TOKEN_ID}).converted()
        if self.vocabulary is None:
            return hf
        spec = json.loads(hf.to_str())
        compact = self.vocabulary.to_compact(np.arange(GPT2_N_VOCAB))
        left_out = np.flatnonzero(compact == self.unknown_id)
        new_id = compact.copy()
        new_id[left_out] = self.n_vocab + np.arange(len(left_out))
        # The two special tokens go in the model's vocabulary too: an added token's id is its
        # vocabulary id if it has one, else the next free id after the vocabulary.
        specials = {EOT_TEXT: self.eot_token, UNKNOWN_TEXT: self.unknown_id}
        spec["model"]["vocab"] = {**{text: int(new_id[i]) for text, i in spec["model"]["vocab"].items()}, **specials}
        (eot,) = spec["added_tokens"]
        spec["added_tokens"] = [{**eot, "id": i, "content": text} for text, i in specials.items()]
        return HFTokenizer.from_str(json.dumps(spec))

    @classmethod
    def _from_record_fields(cls, record: dict, where: str) -> GPT2Tokenizer:
        if record["name"] == GPT2:
            return get_tokenizer()
        if not record["name"].startswith(f"{GPT2}-compact-") or not isinstance(record.get("vocabulary"), dict):
            raise TokenizerError(f"{where} names the tokenizer {record['name']!r}, which this version does not know "
                                 f"(it knows {GPT2!r} and {GPT2}'s compact vocabularies)")
        return cls(CompactVocabulary.from_dict(record["vocabulary"], f"the vocabulary in {where}"))


@functools.cache
def _cached_gpt2_encoding() -> tiktoken.Encoding:
    return _gpt2_encoding()


def get_tokenizer() -> GPT2Tokenizer:
    """GPT-2's tokenizer (n_vocab 50257, ``<|endoftext|>`` = 50256).

    Uses the ranks file named by ``SLM_GPT2_TIKTOKEN`` when that is set (no network),
    otherwise tiktoken's own download. Raises :class:`TokenizerUnavailableError` with a
    message that says what to do when neither works.
    """
    tokenizer = GPT2Tokenizer()
    tokenizer.encoding  # noqa: B018 - load it now, so a missing tokenizer is an error here
    return tokenizer


get_tokenizer.cache_clear = _cached_gpt2_encoding.cache_clear  # tests switch the ranks file
