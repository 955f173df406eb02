"""The TinyStories code path, tested without internet.

The hub's ``roneneldan/TinyStories`` is served by the real ``datasets`` library from small
parquet files made here (``load_dataset("parquet", ...)`` behind the hub name), streaming and
map-style, so everything after the name (iteration, islice, tokenizing, the splits) is the
code a learner online runs.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slm_helpers.data import (
    TINYSTORIES,
    HubUnreachable,
    hub_unreachable_reason,
    load_tokens,
    prepare_dataset,
    preset_dataset,
    sources,
)
from slm_helpers.presets import get_preset
from slm_helpers.tokenizer import get_tokenizer

from conftest import requires_tokenizer

pytestmark = requires_tokenizer

N_STORIES = {"train": 300, "validation": 60}


def make_stories(split: str, n: int) -> list[str]:
    names, things = ["Tom", "Lily", "Max", "Sue", "Ben"], ["ball", "kite", "cake", "dog", "boat"]
    return [f"{names[i % 5]} had a {things[(i // 5) % 5]} in the {split} story {i}.\n\n\"Look!\" said Mom. "
            f"They were happy." for i in range(n)]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """TinyStories as the hub serves it, counting every story ``datasets`` hands out."""
    stories = {split: make_stories(split, n) for split, n in N_STORIES.items()}
    files = {}
    for split, texts in stories.items():
        files[split] = tmp_path / f"{split}.parquet"
        pq.write_table(pa.table({"text": texts}), files[split], row_group_size=25)
    real_load_dataset = datasets.load_dataset
    served = SimpleNamespace(stories=stories, calls=[], read={split: 0 for split in N_STORIES})

    def count(example, split):
        served.read[split] += 1
        return example

    def load_dataset(name, split=None, streaming=False, **kwargs):
        assert name == TINYSTORIES and not kwargs
        served.calls.append((split, streaming))
        ds = real_load_dataset("parquet", data_files={split: str(files[split])}, split=split, streaming=streaming,
                               cache_dir=str(tmp_path / "hf-cache"))
        return ds.map(count, fn_kwargs={"split": split}) if streaming else ds

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    # this machine is offline: the hub's name is served by the files above
    monkeypatch.setattr(sources, "hub_unreachable_reason", lambda host=sources.HUB_HOST: None)
    monkeypatch.setenv("SLM_DATA_DIR", str(tmp_path / "data"))
    return served


def direct_tokens(stories: list[str]) -> np.ndarray:
    enc = get_tokenizer()
    return np.array([i for story in stories for i in enc.encode_ordinary(story) + [enc.eot_token]], dtype=np.uint16)


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_stories_become_exactly_tiktokens_and_only_those_are_read(hub, tmp_path, workers):
    info = prepare_dataset("tinystories", tmp_path / "out", train_stories=100, validation_stories=20,
                           num_workers=workers, progress=False)
    assert hub.calls == [("train", True), ("validation", True)]  # streamed, one split each
    for split, n in [("train", 100), ("validation", 20)]:
        np.testing.assert_array_equal(np.asarray(load_tokens(tmp_path / "out", split)),
                                      direct_tokens(hub.stories[split][:n]))
        assert info.splits[split].stories == n
    assert hub.read == {"train": 100, "validation": 20}  # not the whole split
    assert info.source == "tinystories" and info.source_options == dict(train_stories=100, validation_stories=20)


def test_whole_splits_are_read_map_style(hub, tmp_path):
    info = prepare_dataset("tinystories", tmp_path / "out", num_workers=1, progress=False)
    assert hub.calls == [("train", False), ("validation", False)]
    for split, n in N_STORIES.items():
        np.testing.assert_array_equal(np.asarray(load_tokens(tmp_path / "out", split)),
                                      direct_tokens(hub.stories[split]))
        assert info.splits[split].stories == n  # the hub's own splits, kept apart


def test_cpu_preset_streams_tinystories_when_the_hub_answers(hub):
    cpu = get_preset("cpu")
    notices = []
    info = preset_dataset(cpu, progress=False, log=notices.append).info
    assert info.source == "tinystories" and info.path == str(cpu.data_dir)
    assert cpu.data_dir.name == "tinystories-cpu-compact8192"
    assert hub.read == N_STORIES  # it asks for the first 35,000 / 500; this small hub has fewer
    assert notices[0] == f"no dataset in {cpu.data_dir}: preparing it from 'tinystories'"
    assert len(notices) == 2 and notices[1].startswith("compact vocabulary: ")  # the stories' ids, how many
    again = preset_dataset(cpu, progress=False, log=notices.append).info
    assert again == info and len(notices) == 2  # reused, silently


def test_unreachable_hub_cpu_says_so_in_one_line_and_uses_the_built_in_stories(hub, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'roneneldan/TinyStories' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    cpu = dataclasses.replace(get_preset("cpu"), fallback_options=dict(train_stories=60, validation_stories=10, seed=0))
    notices = []
    info = preset_dataset(cpu, progress=False, log=notices.append).info
    fallback_notices = [n for n in notices if "out of reach" in n]
    assert len(fallback_notices) == 1 and "\n" not in fallback_notices[0]
    assert fallback_notices[0].startswith("TinyStories is out of reach (ConnectionError: Couldn't reach 'roneneldan/"
                                          "TinyStories' on the Hub (LocalEntryNotFoundError)): the cpu preset uses the "
                                          "built-in synthetic stories instead")
    assert "to choose, prepare a dataset into" in fallback_notices[0]
    assert info.source == "synthetic" and info.path.endswith("synthetic-cpu-compact8192")  # recorded in meta.json
    refused = (r"could not load roneneldan/TinyStories from the Hugging Face hub \(ConnectionError: .*\): the gpu "
               r"preset trains on all of TinyStories and has no substitute; without internet, prepare TinyStories")
    with pytest.raises(HubUnreachable, match=refused):
        preset_dataset(get_preset("gpu"), progress=False, log=notices.append)  # no silent substitute for the real run


def test_the_reachability_check_answers_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # many offline machines set it; this test asks the network
    assert hub_unreachable_reason("no-such-host.invalid").startswith("no-such-host.invalid cannot be reached")


def test_offline_mode_leaves_it_to_the_local_cache(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unreachable_reason("no-such-host.invalid") is None
