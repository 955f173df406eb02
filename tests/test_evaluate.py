"""Yardsticks and bits per byte: the numbers every loss is read against."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slm_helpers.data import TokenDataset
from slm_helpers.evaluate import bigram_loss, bits_per_byte, split_loss, unigram_loss, yardsticks
from slm_helpers.model import GPT, GPTConfig

from conftest import requires_tokenizer


def test_bits_per_byte_is_nats_over_ln2_over_bytes_per_token():
    assert bits_per_byte(math.log(2), 1.0) == pytest.approx(1.0)
    assert bits_per_byte(2.8, 4.0) == pytest.approx(2.8 / math.log(2) / 4.0)


def test_the_unigram_table_is_add_one_smoothed_frequencies():
    train = np.array([0, 0, 0, 1])  # counts 3, 1, 0 (+1 each): 4/7, 2/7, 1/7
    assert unigram_loss(train, np.array([0, 2]), 3) == pytest.approx(-(math.log(4 / 7) + math.log(1 / 7)) / 2)


def test_the_bigram_table_discounts_seen_pairs_towards_the_unigram_table():
    train = np.array([0, 1, 0, 1, 0, 2])  # pairs 01 x2, 10 x2, 02 x1; c(0)=3 (followers 1, 2), c(1)=2 (follower 0)
    unigram = np.array([3, 2, 1]) + 1.0
    unigram /= unigram.sum()
    d = 0.75
    p_01 = (2 - d) / 3 + d * 2 / 3 * unigram[1]  # seen: the discounted count, plus the discount mass
    p_12 = 0 + d * 1 / 2 * unigram[2]  # never seen after 1: only the mass it gave up
    expected = -(math.log(p_01) + math.log(p_12)) / 2
    assert bigram_loss(train, np.array([0, 1, 2]), 3) == pytest.approx(expected)
    # A token never seen as a first token falls back to the unigram table.
    assert bigram_loss(train, np.array([2, 0]), 3) == pytest.approx(-math.log(unigram[0]))


def test_a_table_that_knows_the_pairs_beats_one_that_does_not():
    rng = np.random.default_rng(0)
    text = np.tile(np.arange(10), 300)  # each token always follows the one before: a bigram table learns it
    noisy = np.where(rng.random(len(text)) < 0.1, rng.integers(0, 10, len(text)), text)
    assert bigram_loss(noisy, text, 10) < 0.5 < math.log(10) - 0.01 < unigram_loss(noisy, text, 10) + 0.01


@requires_tokenizer
def test_yardsticks_of_a_dataset(small_dataset):
    dataset = TokenDataset.open(small_dataset.path)
    sticks = yardsticks(dataset)
    assert list(sticks) == ["uniform (ln V)", "unigram table", "bigram table"]
    assert sticks["uniform (ln V)"]["nats"] == pytest.approx(math.log(50257))
    assert sticks["uniform (ln V)"]["nats"] > sticks["unigram table"]["nats"] > sticks["bigram table"]["nats"]
    per_byte = dataset.bytes_per_token("validation")
    assert all(s["bpb"] == pytest.approx(s["nats"] / math.log(2) / per_byte) for s in sticks.values())


@requires_tokenizer
def test_split_loss_is_the_mean_over_every_window_of_the_split(small_dataset):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16, dropout=0.0)).eval()
    tokens = torch.from_numpy(np.asarray(TokenDataset.open(small_dataset.path).tokens("validation"), dtype=np.int64))
    windows = (len(tokens) - 1) // 32
    with torch.no_grad():
        losses = [model(tokens[i * 32 : (i + 1) * 32][None], tokens[i * 32 + 1 : (i + 1) * 32 + 1][None])[1].item()
                  for i in range(windows)]
    assert split_loss(model, small_dataset.path, "validation", 32, batch_size=7) == pytest.approx(np.mean(losses),
                                                                                                 rel=1e-5)
