"""Stories on request: the records' parser, records made from stories, the hub path behind
its real name, the batches with the prompt masked, the checker, and fine-tuning from weights."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from slm_helpers.checker import Score, sad_ending, score, used_words, word_forms, words_line, words_used
from slm_helpers.checkpoint import load_checkpoint, load_model
from slm_helpers.data import sources
from slm_helpers.data.vocabularies import reserved_ids
from slm_helpers.instruct import (
    FEATURES,
    INSTRUCT_HUB,
    Record,
    RequestData,
    RequestError,
    check_request,
    content_words,
    has_dialogue,
    parse_records,
    prepare_requests,
    preset_requests,
    read_records,
    record_from_story,
    request_prompt,
)
from slm_helpers.presets import get_preset
from slm_helpers.train import train
from slm_helpers.vocab import build_vocabulary

import quick_cli
from conftest import requires_tokenizer

# Records shaped like TinyStoriesInstruct's files: one line per row, headers in any order and
# any subset, a Summary after the story, a record without "Story:", and a file that begins in
# the middle of a record.
HUB_LINES = """\
and they all went home happy. The end.
<|endoftext|>
Summary: Lily steals a new bike and learns that stealing is wrong.
Words: ride, work, upset
Features: Dialogue, BadEnding
Story:

Lily liked to ride her bike. "Mine!" she said.
She was upset at work.
<|endoftext|>
Features: Twist
Random sentence: The sun was hot.
Words: jump, red, box
Story: Tom saw a red box. He did jump.
<|endoftext|>
Words: sing, tree
Story:

A bird sat in a tree and liked to sing.
Summary: A bird sings in a tree.
<|endoftext|>
Summary: Max finds a stick.
Words: stick, happy

Max found a stick. He was happy.
<|endoftext|>
Summary: no story here.
Words: cat
Story:
<|endoftext|>
""".splitlines()


def test_the_parser_handles_each_quirk_of_the_hub_s_file():
    skipped = Counter()
    records = list(parse_records(HUB_LINES, skipped))
    assert [r.words for r in records] == [("ride", "work", "upset"), ("jump", "red", "box"), ("sing", "tree"),
                                          ("stick", "happy")]
    lily, tom, bird, max_ = records
    assert lily.features == ("Dialogue", "BadEnding") and lily.summary.startswith("Lily steals")
    assert lily.story == 'Lily liked to ride her bike. "Mine!" she said.\nShe was upset at work.'
    assert tom.features == ("Twist",) and tom.story == "Tom saw a red box. He did jump."  # text on the Story: line
    assert bird.summary == "A bird sings in a tree." and bird.story == "A bird sat in a tree and liked to sing."
    assert max_.story == "Max found a stick. He was happy." and max_.features == ()  # no Story: line
    assert skipped == {"fragment": 1, "no story": 1}  # the file's first lines, and a record without a story


def test_a_file_without_a_final_separator_keeps_its_last_record():
    records = list(parse_records(["Words: a1", "Story:", "The end of it."]))
    assert records == [Record("The end of it.", ("a1",))]


def test_records_made_from_a_story_ask_for_words_of_its_beginning():
    story = 'Once upon a time, Lily found a shiny shell on the beach. "Look!" she said to Mom.' + " Then" * 80 + \
        " they ate pizza."
    record = record_from_story(story, random.Random(0), n_words=3, window_words=20)
    assert len(record.words) == 3 and set(record.words) <= {"found", "shiny", "shell", "beach", "look"}
    assert "pizza" not in record.words and record.features == ("Dialogue",)
    assert content_words("The Dog and the dog ran far away") == ["dog", "ran", "far"]  # no names, no stop words
    assert record_from_story("Tom ran.", random.Random(0)) is None  # too few words to ask for
    quiet = record_from_story("Mia liked jumping over puddles near gardens.", random.Random(0))
    assert quiet.features == ()


def test_dialogue_needs_quoted_speech():
    assert has_dialogue('"Hello," said Tom.') and has_dialogue("“Hi!” she said.")
    assert not has_dialogue("Tom said hello.") and not has_dialogue('He read "" twice.')


def test_requests_are_checked_and_written_as_the_prompt():
    assert check_request("Dog, ball , happy", ["dialogue"]) == (("dog", "ball", "happy"), ("Dialogue",))
    assert request_prompt(["dog", "ball"], ["Dialogue"]) == "Words: dog, ball\nFeatures: Dialogue\nStory:\n"
    assert request_prompt("dog") == "Words: dog\nStory:\n"
    with pytest.raises(RequestError, match="give at least one word"):
        request_prompt([])
    with pytest.raises(RequestError, match="give at least one word"):
        request_prompt(" , ")
    with pytest.raises(RequestError, match=r"unknown feature 'Funny': choose among Dialogue, BadEnding"):
        request_prompt(["dog"], ["Funny"])
    with pytest.raises(RequestError, match="one word of letters, not 'ice cream'"):
        request_prompt(["ice cream"])
    assert set(FEATURES) == {"Dialogue", "BadEnding", "MoralValue", "Twist", "Foreshadowing", "Conflict"}


# ----------------------------------------------------------------------------- the checker


def test_the_checker_counts_simple_inflections_only():
    assert {"baking", "baked", "bakes"} <= word_forms("bake")
    assert {"plays", "played", "playing"} <= word_forms("play")
    assert {"boxes", "tries", "tried"} <= word_forms("box") | word_forms("try")
    assert words_used("She was baking a cake and played.", ["bake", "play", "dog"]) == pytest.approx(2 / 3)
    assert words_used("The doghouse was red.", ["dog"]) == 0  # another word, not an inflection
    assert words_used("anything", []) == 1.0
    assert used_words("She was baking a cake and played.", ["dog", "play", "bake"]) == ["play", "bake"]
    assert words_line("She was baking a cake.", ["bake", "dog"]) == "1 of 2 words (bake)"
    assert words_line("The doghouse was red.", ["dog"]) == "0 of 1 words (none)"


def test_the_score_over_stories_and_its_blind_spot():
    records = [Record("x", ("dog", "ball"), ("Dialogue",)), Record("x", ("sun",), ())]
    stories = ['The dog said, "Hi!"', "The sun was up."]
    result = score(records, stories)
    assert result == Score(words=0.75, all_words=0.5, dialogue=1.0, stories=2)
    assert "words used 75%" in result.line()
    fooled = score(records, ["dog ball", "sun"])  # a list of the words is not a story, and scores full marks
    assert fooled.words == 1.0 and fooled.dialogue == 0.0
    with pytest.raises(ValueError, match="one story per record"):
        score(records, stories[:1])
    assert sad_ending("They played. Then the ball was lost and Tom cried.")
    assert not sad_ending("Tom cried. Then they found the ball and laughed all day. The end.")


# ----------------------------------------------------------------------------- the vocabulary


def test_a_compact_vocabulary_keeps_reserved_ids_in_place_of_the_rarest():
    counts = np.array([0, 5, 1, 9, 0, 7, 0, 0, 0, 3])
    vocabulary = build_vocabulary(counts, eot_token=9, vocab_size=5, reserved=[6, 9])
    assert sorted(vocabulary.gpt2_ids) == [3, 5, 6, 9]  # the two most frequent, the reserved, eot
    assert set(build_vocabulary(counts, 9, reserved=[6]).gpt2_ids) == {1, 2, 3, 5, 6, 9}


@requires_tokenizer
def test_the_request_format_survives_a_compact_vocabulary(tmp_path):
    from slm_helpers.data import TokenDataset, prepare_dataset

    info = prepare_dataset("synthetic", tmp_path / "c", vocab="compact", train_stories=50, validation_stories=10,
                           num_workers=1, progress=False, log=lambda line: None)
    tokenizer = TokenDataset.open(info.path, log=lambda line: None).tokenizer
    assert set(reserved_ids()) <= set(tokenizer.vocabulary.gpt2_ids)
    prompt = request_prompt(["dog"], FEATURES)
    assert tokenizer.unknown_tokens(prompt) == []  # every token of the format has its own id


# ----------------------------------------------------------------------------- the hub, behind its name


@pytest.fixture
def instruct_hub(tmp_path, monkeypatch):
    """TinyStoriesInstruct as the hub serves it: the real ``datasets`` text loader, one row per line."""
    files = {}
    for split, lines in (("train", HUB_LINES * 3), ("validation", HUB_LINES)):
        files[split] = tmp_path / f"{split}.txt"
        files[split].write_text("\n".join(lines) + "\n")
    real_load_dataset = datasets.load_dataset
    calls = []

    def load_dataset(name, split=None, streaming=False, **kwargs):
        assert name == INSTRUCT_HUB and not kwargs
        calls.append((split, streaming))
        return real_load_dataset("text", data_files={split: str(files[split])}, split=split, streaming=streaming,
                                 cache_dir=str(tmp_path / "hf-cache"))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(sources, "hub_unreachable_reason", lambda host=sources.HUB_HOST: None)
    monkeypatch.setenv("SLM_DATA_DIR", str(tmp_path / "data"))
    return calls


def test_hub_records_are_streamed_and_parsed(instruct_hub, tmp_path):
    notices = []
    folder = prepare_requests("tinystories", tmp_path / "req", train_records=5, validation_records=2,
                              log=notices.append)
    assert instruct_hub == [("train", True), ("validation", True)]
    train_records = read_records(folder, "train")
    # The train split serves the lines three times: only the file's first block is a fragment; the
    # same text later is a record of its own, without headers.
    assert [r.words for r in train_records] == [("ride", "work", "upset"), ("jump", "red", "box"), ("sing", "tree"),
                                                ("stick", "happy"), ()]
    assert len(read_records(folder, "validation")) == 2
    assert notices[-1] == f"records: the first 5 and 2 of {INSTRUCT_HUB} (its own requests)"
    assert any("skipped fragment x 1" in n for n in notices)
    again = prepare_requests("tinystories", tmp_path / "req", train_records=5, validation_records=2,
                             log=notices.append)
    assert again == folder and len(instruct_hub) == 2  # reused, not read again
    assert notices[-1] == f"records: the first 5 and 2 of {INSTRUCT_HUB} (its own requests)"  # the same line
    with pytest.raises(ValueError, match="already holds other records"):
        prepare_requests("tinystories", tmp_path / "req", train_records=6, validation_records=2)


def test_an_unreachable_hub_gives_records_of_the_fallback_stories_in_one_line(instruct_hub, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'roneneldan/TinyStoriesInstruct' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    preset = get_preset("cpu")
    preset = type(preset)(**{**preset.__dict__, "requests": dict(train_records=20, validation_records=5)})
    notices = []
    folder = preset_requests(preset, log=notices.append)
    fallback = [n for n in notices if "out of reach" in n]
    assert len(fallback) == 1 and "\n" not in fallback[0] and folder.name == "requests-synthetic-cpu"
    assert fallback[0].startswith(f"{INSTRUCT_HUB} is out of reach (ConnectionError: Couldn't reach")
    assert len(read_records(folder, "train")) == 20 and len(read_records(folder, "validation")) == 5


# ----------------------------------------------------------------------------- batches and fine-tuning


@requires_tokenizer
def test_a_batch_row_takes_loss_on_the_story_only(small_dataset):
    from slm_helpers.data import TokenDataset

    tokenizer = TokenDataset.open(small_dataset.path, log=lambda line: None).tokenizer
    record = Record("Tom had a red ball. He was happy.", ("ball", "happy"), ("Dialogue",))
    data = RequestData({"train": [record], "validation": [record]}, tokenizer)
    prompt = tokenizer.encode_ordinary(record.prompt())
    story = tokenizer.encode_ordinary(record.story) + [tokenizer.eot_token]
    x, y = data.batch("train", 2, 32, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (2, 32)
    ids = prompt + story
    assert x[0, : len(ids)].tolist() == ids and y[0, : len(ids) - 1].tolist()[len(prompt) - 1:] == story
    assert (y[0, : len(prompt) - 1] == -1).all()  # no loss on the request
    assert (y[0, len(ids) - 1:] == -1).all() and (x[0, len(ids):] == tokenizer.eot_token).all()  # nor the padding
    short_x, short_y = data.example(record, 8)  # a block shorter than the record: cut, still masked
    assert short_x.tolist() == ids[:8] and (short_y[: len(prompt) - 1] == -1).all()


@requires_tokenizer
def test_fine_tuning_starts_from_the_weights_and_says_so(small_dataset, tmp_path):
    from test_train import TINY_MODEL, tiny_train_config

    quiet = dict(progress=False, log=lambda *a, **k: None)
    train(model_config=TINY_MODEL, train_config=tiny_train_config(), data_dir=small_dataset.path,
          out_dir=tmp_path / "base", **quiet)
    base = tmp_path / "base" / "best_model_params.pt"
    folder = prepare_requests("synthetic", tmp_path / "req", train_records=30, validation_records=5,
                              log=lambda line: None)
    with pytest.raises(ValueError, match="fine-tune a trained model: give init_from"):
        train(model_config=TINY_MODEL, train_config=tiny_train_config(), data_dir=folder, out_dir=tmp_path / "x",
              **quiet)
    config = tiny_train_config(max_steps=4)
    result = train(model_config=TINY_MODEL, train_config=config, data_dir=folder, out_dir=tmp_path / "ft",
                   init_from=base, **quiet)
    model, tokenizer = load_model(base)
    data = RequestData.open(folder, tokenizer)
    x, y = data.batch("validation", 4, TINY_MODEL.block_size, torch.Generator().manual_seed(6))
    # step 0 evaluates the base weights: the loss on the records is the base model's, not a fresh model's
    assert result.history[0]["val_loss"] < 0.9 * np.log(tokenizer.n_vocab)
    checkpoint = load_checkpoint(tmp_path / "ft" / "checkpoint.pt")
    assert checkpoint["init_from"] == str(base)
    assert checkpoint["dataset"]["splits"] == {"train": {"records": 30}, "validation": {"records": 5}}
    other = prepare_requests("synthetic", tmp_path / "other", train_records=30, validation_records=5, seed=1,
                             log=lambda line: None)
    for data_dir, held in ((other, "30 train records, 5 validation records"),  # same counts, other records
                           (small_dataset.path, "stories")):  # a token dataset
        with pytest.raises(ValueError, match=f"was trained on 'records of requests'.*{held}.*resume on the data"):
            train(model_config=TINY_MODEL, train_config=config, data_dir=data_dir,
                  out_dir=tmp_path / "ft", init_from=base, resume=True, **quiet)
    assert "Words:" in result.history[-1]["sample"]  # its samples answer a request
    tuned, _ = load_model(tmp_path / "ft" / "best_model_params.pt")
    assert tuned.config == model.config
    assert x.shape == (4, TINY_MODEL.block_size) and (y == -1).any()
    proc = command("slm_helpers.generate", "--checkpoint", str(tmp_path / "ft" / "best_model_params.pt"), "--words",
                   "dog,Ball", "--features", "dialogue", "--max-new-tokens", "5", "--seed", "0")
    assert proc.returncode == 0 and proc.stdout.startswith("Words: dog, ball\nFeatures: Dialogue\nStory:\n")


# ----------------------------------------------------------------------------- from a terminal


def command(*args):
    """``python -m *args``, in a process of its own forked from one that imported torch once (quick_cli)."""
    return quick_cli.run(list(args), dict(os.environ), cwd=Path.cwd())


@pytest.mark.parametrize(("args", "message"), [
    (["--words", ""], "error: give at least one word"),
    (["--words", "dog", "--features", "Funny"], "error: unknown feature 'Funny': choose among Dialogue"),
    (["--features", "Dialogue"], "error: --features need --words"),
    (["--words", "dog", "--prompt", "Once"], "error: give --prompt, or --words"),
])
def test_generate_refuses_a_bad_request_in_one_line(args, message, tmp_path):
    proc = command("slm_helpers.generate", "--checkpoint", str(tmp_path / "none.pt"), *args)
    assert proc.returncode == 2 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


def test_train_refuses_a_missing_init_from_in_one_line(tmp_path):
    proc = command("slm_helpers.train", "--preset", "ci", "--init-from", str(tmp_path / "none.pt"))
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: --init-from {tmp_path / 'none.pt'}: no such file")
    assert proc.stderr.count("\n") == 1
