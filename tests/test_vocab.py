"""The compact vocabulary, end to end: preparing, exact round trips, training, generating,
and clear errors when a mapping and a model or dataset do not belong together."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from slm_helpers.checkpoint import BEST_WEIGHTS_FILE, CheckpointError
from slm_helpers.data import VOCAB_FILE, DataError, TokenDataset, load_tokens, prepare_dataset, read_info
from slm_helpers.data.vocabularies import reserved_ids
from slm_helpers.errors import TokenizerError
from slm_helpers.generate import check_tokenizer, load_model, write_story
from slm_helpers.presets import get_preset
from slm_helpers.tokenizer import GPT2Tokenizer, get_tokenizer
from slm_helpers.train import train
from slm_helpers.vocab import CompactVocabulary, VocabularyError, build_vocabulary

from conftest import requires_tokenizer

pytestmark = requires_tokenizer


def load_vocabulary(folder) -> CompactVocabulary:
    return TokenDataset.open(folder).tokenizer.vocabulary
STORIES = dict(train_stories=300, validation_stories=40, seed=7)


@pytest.fixture(scope="module")
def compact(tmp_path_factory):
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("compact") / "d", vocab="compact", num_workers=1,
                           progress=False, log=lambda line: None, **STORIES)


@pytest.fixture(scope="module")
def compact_run(compact, tmp_path_factory):
    preset = get_preset("ci", max_steps=6, warmup_steps=0, eval_interval=3)
    out = tmp_path_factory.mktemp("compact-run") / "run"
    result = train(preset, data_dir=compact.path, out_dir=out, progress=False, log=lambda line: None)
    return result


def test_compact_ids_map_back_to_exactly_the_gpt2_ids(small_dataset, compact):
    """The same stories (the session's small_dataset has the same source and options) give the
    same GPT-2 ids through the mapping: nothing is lost when nothing is dropped."""
    vocabulary = load_vocabulary(compact.path)
    full = np.asarray(load_tokens(small_dataset.path, "train"))
    ids = np.asarray(load_tokens(compact.path, "train"))
    assert ids.max() < vocabulary.size == compact.n_vocab
    assert vocabulary.to_gpt2(ids.tolist()) == full.tolist()
    # Validation ids the training split never uses are unknown, and only those; the coverage says how many.
    full = np.asarray(load_tokens(small_dataset.path, "validation"))
    back = vocabulary.to_gpt2(np.asarray(load_tokens(compact.path, "validation")).tolist())
    seen = np.isin(full, vocabulary.gpt2_ids)
    assert [b for b, s in zip(back, seen) if s] == full[seen].tolist()
    assert all(b is None for b, s in zip(back, seen) if not s)
    assert vocabulary.coverage["validation"] == pytest.approx(seen.mean())
    # the ids the training split uses, and those the request format of notebook 08 needs
    used = set(np.unique(np.asarray(load_tokens(small_dataset.path, "train"))).tolist())
    assert set(vocabulary.gpt2_ids) == used | set(reserved_ids())
    assert vocabulary.coverage["train"] == 1.0
    assert compact.eot_token == vocabulary.gpt2_ids.index(get_tokenizer().eot_token)


def test_text_round_trips_through_the_compact_tokenizer(compact, small_dataset):
    tokenizer = GPT2Tokenizer(load_vocabulary(compact.path))
    text = tokenizer.decode(np.asarray(load_tokens(compact.path, "train"))[:2000].tolist())
    assert text == get_tokenizer().decode(np.asarray(load_tokens(small_dataset.path, "train"))[:2000].tolist())
    stories = text.split("<|endoftext|>")[:-1]  # the separator is a special token, not text to encode
    assert len(stories) > 5 and "<unk>" not in text
    for story in stories:
        assert tokenizer.decode(tokenizer.encode_ordinary(story)) == story
        assert tokenizer.unknown_tokens(story) == []


def test_a_size_keeps_the_most_frequent_ids_and_the_story_separator():
    eot = 9
    counts = np.array([0, 50, 7, 30, 0, 30, 1, 2, 3, 0])  # the separator never occurs here
    vocabulary = build_vocabulary(counts, eot, vocab_size=4)
    assert vocabulary.gpt2_ids == (1, 3, eot)  # 30 and 30: the lower id first; then eot in the last place
    assert vocabulary.size == 4 and vocabulary.unknown_id == 3
    assert vocabulary.to_compact([1, 3, 5, 9, 0]).tolist() == [0, 1, 3, 2, 3]
    assert vocabulary.to_gpt2([0, 1, 2, 3]) == [1, 3, 9, None]
    assert build_vocabulary(counts, eot).gpt2_ids == (1, 3, 5, 2, 8, 7, 6, eot)  # every id used, then eot


def test_a_limited_vocabulary_records_its_coverage_and_marks_unknown_tokens(tmp_path, small_dataset):
    # 80 ids: the most frequent, the request format's (notebook 08) and <unk>
    info = prepare_dataset("synthetic", tmp_path / "k", vocab="compact", vocab_size=80, num_workers=1,
                           progress=False, log=lambda line: None, **STORIES)
    vocabulary = load_vocabulary(info.path)
    assert info.n_vocab == vocabulary.size == 80
    full = np.asarray(load_tokens(small_dataset.path, "train"))
    kept = np.isin(full, vocabulary.gpt2_ids)
    assert vocabulary.coverage["train"] == pytest.approx(kept.mean())
    assert 0.5 < vocabulary.coverage["train"] < 1
    ids = np.asarray(load_tokens(info.path, "train"))
    assert ((ids == vocabulary.unknown_id) == ~kept).all()
    tokenizer = GPT2Tokenizer(vocabulary)
    assert "<unk>" in tokenizer.decode(ids[:300].tolist())


def test_training_takes_vocab_size_from_the_dataset_and_generates_text(compact, compact_run):
    assert compact_run.steps == 6
    model, tokenizer = load_model(compact_run.out_dir / BEST_WEIGHTS_FILE)
    assert model.config.vocab_size == compact.n_vocab == tokenizer.vocabulary.size == tokenizer.n_vocab
    assert model.config.tokenizer == tokenizer.name == compact.tokenizer
    assert model.transformer.wte.weight.shape[0] == compact.n_vocab
    story = write_story(model, tokenizer, "Once upon a time", max_new_tokens=30, temperature=0, top_k=None)
    assert story.startswith("Once upon a time") and len(story) > len("Once upon a time") + 10
    assert all(record["sample"].startswith("Once upon a time") for record in compact_run.history)
    said = []
    write_story(model, tokenizer, "Once upon a time, Zyxwv", max_new_tokens=3, seed=0, log=said.append)
    assert len(said) == 1 and "not in the model's compact vocabulary" in said[0] and "' Z'" in said[0]


def test_a_mapping_that_does_not_fit_the_model_is_a_clear_error(compact_run, tmp_path):
    saved = torch.load(compact_run.out_dir / BEST_WEIGHTS_FILE, weights_only=True)
    mapping = saved["tokenizer"]["vocabulary"]
    del mapping["fingerprint"]  # as a mapping made by hand would be
    mapping["gpt2_ids"] = mapping["gpt2_ids"][:-5]
    saved["tokenizer"]["name"] = GPT2Tokenizer(CompactVocabulary.from_dict(mapping)).name
    torch.save(saved, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"compact vocabulary of \d+ ids for a model of vocab_size \d+"):
        load_model(tmp_path / "w.pt")
    mapping["gpt2_ids"] = [1, 1, 2]
    torch.save(saved, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="distinct GPT-2 ids"):
        load_model(tmp_path / "w.pt")


def test_another_vocabulary_s_tokenizer_is_refused(compact_run):
    model, tokenizer = load_model(compact_run.out_dir / BEST_WEIGHTS_FILE)
    other = GPT2Tokenizer(CompactVocabulary((1, 2, 50256), 50257))
    with pytest.raises(TokenizerError, match="use the tokenizer that load_model returns"):
        check_tokenizer(model, other)
    with pytest.raises(TokenizerError, match="use the tokenizer that load_model returns"):
        check_tokenizer(model, get_tokenizer())  # GPT-2's own ids, for a model of compact ids
    gpt2_model, _ = load_model(compact_run.out_dir / BEST_WEIGHTS_FILE, config=None)
    gpt2_model.config.tokenizer = "gpt2"  # as a model of GPT-2's own ids
    with pytest.raises(TokenizerError, match="use the tokenizer that load_model returns"):
        check_tokenizer(gpt2_model, tokenizer)


def test_resuming_on_a_dataset_of_another_vocabulary_is_refused(compact_run, small_dataset, tmp_path):
    out = shutil.copytree(compact_run.out_dir, tmp_path / "run")
    preset = get_preset("ci", max_steps=6, warmup_steps=0, eval_interval=3)
    refused = r"trained with a compact vocabulary of \d+ ids \(mapping \w+\), but .* has GPT-2's full"
    with pytest.raises(CheckpointError, match=refused):
        train(preset, data_dir=small_dataset.path, out_dir=out, resume=True, progress=False, log=lambda line: None)


def test_a_compact_dataset_without_its_mapping_is_a_clear_error(compact, tmp_path):
    broken = shutil.copytree(compact.path, tmp_path / "d")
    (broken / VOCAB_FILE).unlink()
    with pytest.raises(VocabularyError, match=r"vocab.json is missing.*prepare the dataset again with --overwrite"):
        train(get_preset("ci", max_steps=2, warmup_steps=0), data_dir=broken, out_dir=tmp_path / "r", progress=False,
              log=lambda line: None)
    assert read_info(broken).vocab == "compact"


def test_bad_vocabulary_options_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="vocab must be one of full, compact"):
        prepare_dataset("synthetic", tmp_path / "a", vocab="tiny", **STORIES)
    with pytest.raises(DataError, match="vocab_size .* is for vocab='compact'"):
        prepare_dataset("synthetic", tmp_path / "b", vocab_size=100, **STORIES)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_replacing_a_compact_dataset_with_a_full_one_removes_the_mapping(tmp_path):
    folder = tmp_path / "d"
    prepare_dataset("synthetic", folder, vocab="compact", num_workers=1, progress=False, log=lambda line: None,
                    **STORIES)
    info = prepare_dataset("synthetic", folder, overwrite=True, num_workers=1, progress=False, **STORIES)
    assert info.vocab == "full" and info.n_vocab == 50257 and not (folder / VOCAB_FILE).exists()
    preset = get_preset("ci")
    assert replace(preset.model).vocab_size == 50257  # presets keep GPT-2's full vocabulary
