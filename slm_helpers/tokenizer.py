"""The GPT-2 byte-pair tokenizer, online or offline.

Every notebook uses OpenAI's GPT-2 encoding through tiktoken: 50,257 ids, with
``<|endoftext|>`` = 50256 marking where one story ends and the next begins.

``tiktoken.get_encoding("gpt2")`` downloads its files on first use. Machines without
internet (CI, an air-gapped lab) can point the environment variable
``SLM_GPT2_TIKTOKEN`` at a local copy of the ranks file; the encoding built from it is
identical, id for id.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

RANKS_FILE_ENV = "SLM_GPT2_TIKTOKEN"
GPT2_N_VOCAB = 50257
EOT_TOKEN_ID = 50256

HOW_TO_GET_RANKS = (
    f"online, unset {RANKS_FILE_ENV} and tiktoken downloads its files; offline, set {RANKS_FILE_ENV} to a GPT-2 ranks "
    "file, which anyone rebuilds from PyPI: `pip download --no-deps --no-binary :all: openai-whisper==20250625`, "
    "then take openai_whisper-20250625/whisper/assets/gpt2.tiktoken from the archive (README.md, 'Without internet')"
)


class TokenizerUnavailableError(ValueError):
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
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: EOT_TOKEN_ID},
        explicit_n_vocab=GPT2_N_VOCAB,
    )


@functools.lru_cache(maxsize=None)
def get_tokenizer() -> tiktoken.Encoding:
    """Return the GPT-2 encoding (n_vocab 50257, ``<|endoftext|>`` = 50256).

    Uses the ranks file named by ``SLM_GPT2_TIKTOKEN`` when that is set (no network),
    otherwise tiktoken's own download. Raises :class:`TokenizerUnavailableError` with a
    message that says what to do when neither works.
    """
    ranks_file = os.environ.get(RANKS_FILE_ENV)
    if ranks_file:
        return gpt2_from_ranks_file(ranks_file)
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as error:  # requests' ConnectionError, a blocked proxy, a bad cache...
        raise TokenizerUnavailableError(
            f"could not download the GPT-2 tokenizer files ({type(error).__name__}): {HOW_TO_GET_RANKS}"
        ) from None
