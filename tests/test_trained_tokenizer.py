"""The tokenizer trained on the stories (slm_helpers.trained_tokenizer), the development split,
and a trained tokenizer travelling with the dataset and the weights like GPT-2's."""

from __future__ import annotations

import json
import pickle
import random

import pytest

from slm_helpers.checkpoint import load_model
from slm_helpers.data import DataError, TokenDataset, prepare_dataset
from slm_helpers.data.sources import DEVELOPMENT_SHARE, is_development_story, open_source
from slm_helpers.errors import TokenizerError
from slm_helpers.model import GPTConfig
from slm_helpers.optim import TrainConfig
from slm_helpers.stories import generate_stories
from slm_helpers.tokenizer import EOT_TEXT, Tokenizer
from slm_helpers.train import train
from slm_helpers.trained_tokenizer import TrainedTokenizer, train_tokenizer

QUIET = dict(num_workers=1, progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def stories() -> list[str]:
    return list(generate_stories(400, "train", seed=3))


@pytest.fixture(scope="module")
def tokenizer(stories) -> TrainedTokenizer:
    return train_tokenizer(stories, 600)


def random_text(rng: random.Random, n: int) -> str:
    """Characters from every width of UTF-8: ASCII with controls, Latin, CJK, emoji, and the
    special token's text."""
    pools = [(0, 127), (128, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    parts = []
    for _ in range(n):
        if rng.random() < 0.05:
            parts.append(EOT_TEXT)
        else:
            low, high = rng.choice(pools)
            parts.append(chr(rng.randint(low, high)))
    return "".join(parts)


def test_every_text_round_trips_byte_for_byte(tokenizer, stories):
    rng = random.Random(0)
    texts = [random_text(rng, rng.randint(0, 60)) for _ in range(300)] + stories[:50] + ["", " ", "\n\n", "  a  "]
    for text in texts:
        ids = tokenizer.encode_ordinary(text)
        assert tokenizer.decode_bytes(ids) == text.encode("utf-8"), repr(text)
        assert tokenizer.decode(ids) == text


def test_every_byte_is_a_token_so_any_byte_sequence_has_ids(tokenizer):
    singles = {tokenizer.decode_single_token_bytes(i) for i in range(tokenizer.n_vocab)}
    assert {bytes([b]) for b in range(256)} <= singles
    rng = random.Random(1)
    for _ in range(50):  # any bytes, also not UTF-8: written by the single-byte tokens
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
        by_byte = {tokenizer.decode_single_token_bytes(i): i for i in range(tokenizer.n_vocab)}
        assert tokenizer.decode_bytes([by_byte[bytes([b])] for b in data]) == data


def test_endoftext_is_special_only_where_asked(tokenizer):
    text = f"The end.{EOT_TEXT}Once"
    ordinary = tokenizer.encode_ordinary(text)
    assert tokenizer.eot_token not in ordinary
    special = tokenizer.encode(text)
    assert special.count(tokenizer.eot_token) == 1
    assert tokenizer.decode(special) == text
    assert tokenizer.encode(text, allowed_special=set()) == ordinary


def test_it_learns_the_stories_words_with_gpt2s_split(tokenizer, stories):
    assert tokenizer.n_vocab == 600
    assert tokenizer.tokens_of(" the") == [" the"]  # a frequent word is one token, with its space
    from tokenizers.pre_tokenizers import ByteLevel

    for text in ["Tom's dog, 42 times!", *stories[:20]]:  # no token crosses a boundary of GPT-2's pre-split
        chunks = [chunk for chunk, _ in ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]
        chunk_ends = {sum(len(c) for c in chunks[: i + 1]) for i in range(len(chunks))}
        ids = tokenizer.encode_ordinary(text)
        # the pre-split's chunks are in byte-level characters, one per byte: count the tokens' bytes
        token_ends = {sum(len(tokenizer.decode_single_token_bytes(t)) for t in ids[: i + 1]) for i in range(len(ids))}
        assert token_ends >= chunk_ends and max(token_ends) == len(text.encode())
    fewer = sum(len(tokenizer.encode_ordinary(s)) for s in stories[:50])
    assert fewer < sum(len(s.encode()) for s in stories[:50]) / 2  # merges pay: < 1 token per 2 bytes


def test_the_same_stories_give_the_same_tokenizer(stories, tokenizer):
    again = train_tokenizer(stories, 600)
    assert again.name == tokenizer.name and again.json == tokenizer.json
    other = train_tokenizer(stories[:200], 600)
    assert other.name != tokenizer.name


def test_it_travels_as_a_record_and_a_pickle(tokenizer):
    record = json.loads(json.dumps(tokenizer.record()))
    assert record["kind"] == "trained"
    assert Tokenizer.from_record(record, "x") == tokenizer
    assert pickle.loads(pickle.dumps(tokenizer)) == tokenizer
    saved = json.loads(record["tokenizer_json"])
    vocab = saved["model"]["vocab"]
    a, b = "Ġthe", "Ġand"  # two ids swapped: the same tokens, other ids
    vocab[a], vocab[b] = vocab[b], vocab[a]
    changed = dict(record, tokenizer_json=json.dumps(saved))
    with pytest.raises(TokenizerError, match="names the tokenizer 'bpe-600-.*', but its mapping is"):
        Tokenizer.from_record(changed, "x")
    with pytest.raises(TokenizerError, match="holds a tokenizer of the kind 'sentencepiece', which this version"):
        Tokenizer.from_record(dict(record, kind="sentencepiece"), "x")
    with pytest.raises(TokenizerError, match="is not a tokenizer.json that tokenizers can read"):
        Tokenizer.from_record(dict(record, tokenizer_json="{"), "x")


def test_a_record_without_a_kind_is_gpt2s():
    from slm_helpers.tokenizer import get_tokenizer

    try:
        gpt2 = get_tokenizer()
    except TokenizerError:
        pytest.skip("GPT-2's ranks are not available")
    assert Tokenizer.from_record({"name": "gpt2", "vocabulary": None}, "x") == gpt2


def test_stories_of_few_words_give_fewer_ids_and_it_is_said(tmp_path):
    lines = []
    info = prepare_dataset("synthetic", tmp_path / "d", vocab="trained", vocab_size=5000, train_stories=100,
                           validation_stories=10, seed=0, num_workers=1, progress=False, log=lines.append)
    assert 257 < info.n_vocab < 5000 and info.vocab_size_asked == 5000
    said = [line for line in lines if "ran out of merges" in line]
    assert said == [f"the stories ran out of merges at {info.n_vocab:,} ids (every word of theirs is one token): "
                    f"the tokenizer has {info.n_vocab:,} ids, not 5,000"]
    assert TokenDataset.open(tmp_path / "d").vocab_size == info.n_vocab


def test_too_small_a_size_and_an_unknown_id_are_refused(stories, tokenizer):
    with pytest.raises(TokenizerError, match="token 600 is not an id of bpe-600-"):
        tokenizer.decode_bytes(iter([1, 600]))  # a generator, read once
    with pytest.raises(TokenizerError, match="vocab_size must be a whole number >= 257"):
        train_tokenizer(stories, 100)


def test_a_dataset_with_its_own_tokenizer(tmp_path, stories):
    info = prepare_dataset("synthetic", tmp_path / "d", vocab="trained", vocab_size=500, train_stories=300,
                           validation_stories=40, seed=0, **QUIET)
    data = TokenDataset.open(tmp_path / "d")
    assert isinstance(data.tokenizer, TrainedTokenizer) and data.vocab_size == 500 == info.n_vocab
    train_tokens = data.tokens("train")
    assert int(train_tokens.max()) < 500
    assert (train_tokens == data.tokenizer.eot_token).sum() == 300
    text = data.tokenizer.decode_bytes(t for t in data.tokens("validation") if t != data.tokenizer.eot_token)
    assert len(text) == info.splits["validation"].bytes  # bits per byte count the stories' real bytes
    assert "trained on its stories" in data.describe()
    # the tokenizer's file is checked against meta.json
    path = tmp_path / "d" / "tokenizer.json"
    other = train_tokenizer(stories[:100], 500)
    other.save(path)
    with pytest.raises(DataError, match="meta.json says the tokens are ids of bpe-500-.* but the files give bpe-500-"):
        TokenDataset.open(tmp_path / "d")
    path.unlink()
    with pytest.raises(DataError, match="tokenizer.json is missing, though meta.json says the dataset has a tokenizer"):
        TokenDataset.open(tmp_path / "d")


def test_the_trained_tokenizer_travels_with_the_weights(tmp_path):
    prepare_dataset("synthetic", tmp_path / "d", vocab="trained", vocab_size=400, train_stories=200,
                    validation_stories=30, seed=0, **QUIET)
    data = TokenDataset.open(tmp_path / "d")
    model_config = GPTConfig(block_size=16, n_layer=1, n_head=1, n_embd=16, vocab_size=400,
                             tokenizer=data.tokenizer.name, position="rotary", norm="rmsnorm", mlp="relu2")
    train_config = TrainConfig(batch_size=2, max_steps=2, warmup_steps=1, eval_interval=2, eval_batches=1,
                               device="cpu", dtype="float32")
    train(model_config=model_config, train_config=train_config, data_dir=data, out_dir=tmp_path / "run",
          progress=False, log=lambda *a: None)
    model, tokenizer = load_model(tmp_path / "run" / "best_model_params.pt")
    assert tokenizer == data.tokenizer and isinstance(tokenizer, TrainedTokenizer)


def test_the_development_split_is_carved_from_the_training_stories(tmp_path):
    train_stories = [f"Train story number {i}. Tom ran." for i in range(500)]
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.txt").write_text("\n".join(train_stories) + "\n")
    (folder / "valid.txt").write_text("\n".join(f"Validation story {i} never read." for i in range(50)) + "\n")
    streams = open_source(folder, development=True, log=lambda *a: None)
    seen = [s for texts in streams.values() for s in texts]
    assert [s.strip() for s in seen] == train_stories  # the validation file is never read
    held_out = [s for s in seen if is_development_story(s)]
    assert 0.5 * 500 / DEVELOPMENT_SHARE < len(held_out) < 2 * 500 / DEVELOPMENT_SHARE
    info = prepare_dataset(folder, tmp_path / "d", development=True, vocab="trained", vocab_size=300, **QUIET)
    assert info.splits["validation"].stories == len(held_out)
    assert info.splits["train"].stories == 500 - len(held_out)
    data = TokenDataset.open(tmp_path / "d")
    dev_text = data.tokenizer.decode(data.tokens("validation"))
    assert "Validation story" not in dev_text
    assert all(s in dev_text for s in held_out)
    assert not any(s in data.tokenizer.decode(data.tokens("train")) for s in held_out)
    with pytest.raises(DataError, match="development must be True or False"):
        open_source(folder, development="yes")
