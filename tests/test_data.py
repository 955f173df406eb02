import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from slm_helpers import data
from slm_helpers.data import DataError, TokenDataset, get_batch, load_tokens, prepare, prepare_dataset, read_info
from slm_helpers.data.dataset import FORMAT_VERSION
from slm_helpers.stories import generate_stories
from slm_helpers.tokenizer import get_tokenizer

from conftest import requires_tokenizer

pytestmark = requires_tokenizer


def _direct_tokens(stories):
    enc = get_tokenizer()
    ids = []
    for story in stories:
        ids += enc.encode_ordinary(story) + [enc.eot_token]
    return np.array(ids, dtype=np.uint16)


def test_token_counts_and_ids_match_a_direct_encode(small_dataset):
    for split, n in [("train", 300), ("validation", 40)]:
        expected = _direct_tokens(generate_stories(n, split, seed=7))
        tokens = load_tokens(small_dataset.path, split)
        assert tokens.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(tokens), expected)
        assert small_dataset.splits[split].tokens == len(expected)
        assert small_dataset.splits[split].stories == n == int((tokens == 50256).sum())
    assert tokens[-1] == 50256  # every story, the last included, ends with <|endoftext|>


def test_parallel_workers_write_the_same_bytes(small_dataset, tmp_path):
    info = prepare_dataset("synthetic", tmp_path, train_stories=300, validation_stories=40, seed=7, num_workers=2,
                           progress=False)
    for split in data.SPLITS:
        one_worker = os.path.join(small_dataset.path, f"{split}.bin")
        assert (tmp_path / f"{split}.bin").read_bytes() == Path(one_worker).read_bytes()
    assert info.splits == small_dataset.splits


def test_meta_json_says_what_the_files_hold(small_dataset):
    meta = json.loads((Path(small_dataset.path) / "meta.json").read_text())
    assert meta["source"] == "synthetic" and meta["tokenizer"] == "gpt2" and meta["dtype"] == "uint16"
    assert meta["n_vocab"] == 50257 and meta["eot_token"] == 50256
    assert meta["source_options"] == {"train_stories": 300, "validation_stories": 40, "seed": 7}
    for split in data.SPLITS:
        assert os.path.getsize(os.path.join(small_dataset.path, f"{split}.bin")) == 2 * meta["splits"][split]["tokens"]


def test_prepare_is_idempotent_and_overwrite_redoes(tmp_path):
    opts = dict(train_stories=30, validation_stories=5, num_workers=1, progress=False)
    prepare_dataset("synthetic", tmp_path, **opts)
    stamp = (tmp_path / "train.bin").stat().st_mtime_ns
    time.sleep(0.01)
    prepare_dataset("synthetic", tmp_path, **opts)
    assert (tmp_path / "train.bin").stat().st_mtime_ns == stamp  # reused, not rewritten
    prepare_dataset("synthetic", tmp_path, overwrite=True, **opts)
    assert (tmp_path / "train.bin").stat().st_mtime_ns != stamp


def test_a_different_dataset_in_the_folder_is_an_error_not_a_silent_reuse(tmp_path):
    prepare_dataset("synthetic", tmp_path, train_stories=30, validation_stories=5, num_workers=1, progress=False)
    with pytest.raises(DataError, match="overwrite=True"):
        prepare_dataset("synthetic", tmp_path, train_stories=31, validation_stories=5, num_workers=1, progress=False)


def test_a_run_killed_half_way_leaves_nothing_that_looks_complete(tmp_path):
    script = (
        "from slm_helpers.data import prepare_dataset\n"
        f"prepare_dataset('synthetic', {str(tmp_path)!r}, train_stories=2_000_000, validation_stories=10, "
        "num_workers=1, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not ((tmp_path / "train.bin.tmp").exists() and (tmp_path / "train.bin.tmp").stat().st_size > 100_000):
            assert time.time() < deadline and proc.poll() is None, "preparation did not start writing"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_info(tmp_path) is None
    assert not (tmp_path / "train.bin").exists()
    with pytest.raises(DataError, match="no complete dataset"):
        load_tokens(tmp_path, "train")
    info = prepare_dataset("synthetic", tmp_path, train_stories=20, validation_stories=5, num_workers=1, progress=False)
    assert info.splits["train"].stories == 20 and len(load_tokens(tmp_path, "train")) == info.splits["train"].tokens


def test_local_txt_jsonl_parquet_and_folder(tmp_path):
    stories = [f"Story {i}: Tom had {i} red balls. Lily saw a cat." for i in range(200)]
    txt = tmp_path / "s.txt"
    txt.write_text("<|endoftext|>\n".join(stories) + "<|endoftext|>\n")
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text("".join(json.dumps({"text": s}) + "\n" for s in stories))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": stories}), tmp_path / "s.parquet")
    for name in ["s.txt", "s.jsonl", "s.parquet"]:
        info = prepare_dataset(tmp_path / name, tmp_path / f"out-{name}", num_workers=1, progress=False)
        assert info.splits["train"].stories + info.splits["validation"].stories == len(stories), name
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "TinyStories-train.txt").write_text("<|endoftext|>".join(stories))
    (folder / "TinyStories-valid.txt").write_text("<|endoftext|>".join(stories[:3]))
    info = prepare_dataset(folder, tmp_path / "out-folder", num_workers=1, progress=False)
    assert (info.splits["train"].stories, info.splits["validation"].stories) == (200, 3)


def test_bad_inputs_get_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="Unknown source 'tinystoriez'"):
        prepare_dataset("tinystoriez", tmp_path / "a")
    empty = tmp_path / "empty.txt"
    empty.write_text("  <|endoftext|>  ")
    with pytest.raises(DataError, match="holds no stories"):
        prepare_dataset(empty, tmp_path / "b", num_workers=1, progress=False)
    (tmp_path / "x.csv").write_text("text\nhello\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        prepare_dataset(tmp_path / "x.csv", tmp_path / "c", num_workers=1, progress=False)

    class BigVocab:
        n_vocab = 100_000

    monkeypatch.setattr(prepare, "get_tokenizer", lambda: BigVocab())
    with pytest.raises(DataError, match="more than uint16 can hold"):
        prepare_dataset("synthetic", tmp_path / "d", train_stories=2, validation_stories=1)


def test_damaged_bin_files_are_reported(small_dataset, tmp_path):
    prepare_dataset("synthetic", tmp_path, train_stories=30, validation_stories=5, num_workers=1, progress=False)
    with open(tmp_path / "train.bin", "ab") as f:
        f.write(b"\x00")
    with pytest.raises(DataError, match="not a whole number of 2-byte tokens"):
        load_tokens(tmp_path, "train")
    with open(tmp_path / "validation.bin", "ab") as f:
        f.write(b"\x00\x00")
    with pytest.raises(DataError, match="prepare the dataset again"):
        load_tokens(tmp_path, "validation")


def test_batches_have_shape_shift_and_bounds(small_dataset):
    tokens = np.asarray(load_tokens(small_dataset.path, "train"))
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(small_dataset.path, "train", batch_size=5, block_size=16, generator=g)
    assert x.shape == y.shape == (5, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    assert int(x.min()) >= 0 and int(y.max()) < 50257
    for row_x, row_y in zip(x.numpy(), y.numpy()):  # each row is a real window of the file
        starts = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(tokens, 16) == row_x, axis=1))
        assert any((tokens[s + 1 : s + 17] == row_y).all() for s in starts)


def test_batches_are_reproducible_with_a_generator(small_dataset):
    a = get_batch(small_dataset.path, "validation", 4, 8, generator=torch.Generator().manual_seed(1))
    b = get_batch(small_dataset.path, "validation", 4, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_split_shorter_than_block_size_is_a_clear_error(small_dataset):
    n = small_dataset.splits["validation"].tokens
    with pytest.raises(DataError, match=f"too few for windows of block_size={n}"):
        get_batch(small_dataset.path, "validation", 1, n)
    with pytest.raises(DataError, match="split must be one of"):
        get_batch(small_dataset.path, "test", 1, 4)


def test_command_line_prepares_and_prints(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "slm_helpers.data", "--source", "synthetic", "--out-dir", str(tmp_path),
         "--train-stories", "40", "--validation-stories", "5", "--workers", "1"],
        capture_output=True, text=True, check=True,
    )
    assert "train.bin" in out.stdout and "40 stories" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "slm_helpers.data", "--source", "nope", "--out-dir",
                          str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Unknown source 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_fast_chunk_encoding_equals_story_by_story_encode_ordinary():
    enc = get_tokenizer()
    stories = ["Hi there.", "  spaces  and\nnewlines\n", "emoji 🐸 and café", "x"]
    expected = _direct_tokens(stories)
    np.testing.assert_array_equal(get_tokenizer().encode_stories(stories), expected)
    # A story that contains the marker as text: it must stay ordinary text, not become id 50256.
    tricky = ["before <|endoftext|> after", "next"]
    ids = get_tokenizer().encode_stories(tricky)
    np.testing.assert_array_equal(ids, _direct_tokens(tricky))
    assert int((ids == enc.eot_token).sum()) == 2


def test_a_dataset_of_an_older_version_gets_its_bytes_of_text_counted_once(small_dataset, tmp_path):
    old = Path(shutil.copytree(small_dataset.path, tmp_path / "old"))
    meta = json.loads((old / "meta.json").read_text())
    for split in meta["splits"].values():
        del split["bytes"]
    meta["format_version"] = 1  # as the version before bits per byte wrote it
    (old / "meta.json").write_text(json.dumps(meta))
    said = []
    info = TokenDataset.open(old, log=said.append).info
    assert info.splits == small_dataset.splits  # the bytes counted from the tokens are those counted from the text
    assert len(said) == 1 and "counted and recorded in its meta.json" in said[0]
    assert read_info(old).format_version == FORMAT_VERSION
    TokenDataset.open(old, log=said.append)
    assert len(said) == 1  # once


def test_a_compact_dataset_of_an_older_version_is_named_not_read(tmp_path):
    """Before format 3 a compact vocabulary lacked the request format's ids (notebook 08 would
    read its prompts as <unk>): such a dataset is refused in one line that says what to do."""
    info = prepare_dataset("synthetic", tmp_path / "c", vocab="compact", train_stories=50, validation_stories=10,
                           num_workers=1, progress=False, log=lambda line: None)
    meta = json.loads((Path(info.path) / "meta.json").read_text())
    meta["format_version"] = 2
    (Path(info.path) / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"prepared by an older version of slm_helpers \(meta.json format 2; .*"
                                        r"prepare the dataset again with --overwrite"):
        TokenDataset.open(info.path)
