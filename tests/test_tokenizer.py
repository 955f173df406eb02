import os

import pytest
import tiktoken

from slm_helpers import tokenizer as tok
from slm_helpers.tokenizer import EOT_TOKEN_ID, TokenizerUnavailableError, get_tokenizer

from conftest import has_internet, requires_tokenizer


@requires_tokenizer
def test_known_ids_and_vocabulary():
    enc = get_tokenizer()
    assert enc.n_vocab == 50257
    assert enc.eot_token == EOT_TOKEN_ID == 50256
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.encode_ordinary("Once upon a time") == [7454, 2402, 257, 640]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]


@requires_tokenizer
def test_round_trip_of_unicode_and_whitespace():
    enc = get_tokenizer()
    text = "Lily said, \"Look!\"  \n\n Café, naïve 🐸 — 123 don't"
    assert enc.decode(enc.encode_ordinary(text)) == text


@requires_tokenizer
def test_endoftext_in_story_text_is_not_a_special_token():
    # encode_ordinary treats the marker as plain text: a story cannot smuggle in an EOT id.
    enc = get_tokenizer()
    assert EOT_TOKEN_ID not in enc.encode_ordinary("a <|endoftext|> b")


@pytest.mark.skipif(not os.environ.get(tok.RANKS_FILE_ENV), reason="needs SLM_GPT2_TIKTOKEN")
@pytest.mark.skipif(not has_internet(), reason="needs internet to compare with tiktoken's download")
def test_offline_build_equals_online_encoding():
    offline = tok.gpt2_from_ranks_file(os.environ[tok.RANKS_FILE_ENV])
    online = tiktoken.get_encoding("gpt2")
    text = "One day, a little girl named Lily found a needle in her room. 🧵 ¿Qué? 12345"
    assert offline.encode(text, allowed_special="all") == online.encode(text, allowed_special="all")
    assert offline.n_vocab == online.n_vocab


def test_clear_error_when_offline_without_ranks_file(no_ranks_file, monkeypatch):
    def no_network(name):
        raise ConnectionError("Max retries exceeded (simulated)")

    monkeypatch.setattr(tok.tiktoken, "get_encoding", no_network)
    with pytest.raises(TokenizerUnavailableError) as info:
        get_tokenizer()
    message = str(info.value)
    assert tok.RANKS_FILE_ENV in message and "openai-whisper" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one message, not two traces


def test_clear_error_for_missing_or_wrong_ranks_file(no_ranks_file, monkeypatch, tmp_path):
    monkeypatch.setenv(tok.RANKS_FILE_ENV, str(tmp_path / "nope.tiktoken"))
    with pytest.raises(TokenizerUnavailableError, match="not a file"):
        get_tokenizer()
    get_tokenizer.cache_clear()
    short = tmp_path / "short.tiktoken"
    short.write_text("IQ== 0\nIg== 1\n")
    monkeypatch.setenv(tok.RANKS_FILE_ENV, str(short))
    with pytest.raises(TokenizerUnavailableError, match="holds 2 ranks"):
        get_tokenizer()
