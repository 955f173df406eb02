"""Byte-pair encoding from scratch (notebook 01)."""

from __future__ import annotations

import pytest

from slm_helpers.bpe import BytePairTokenizer, merge, pair_counts
from slm_helpers.errors import SlmError


def test_the_most_frequent_pair_is_merged_first():
    said = []
    tokenizer = BytePairTokenizer.train("aaabdaaabac", 3, log=said.append)
    a = ord("a")
    first, second, third = tokenizer.merges
    assert first == (a, a)  # 'aa' occurs four times (overlapping), more than any other pair
    assert tokenizer.vocab[256] == b"aa" and tokenizer.size == 259
    assert len(said) == 3 and said[0].startswith("merge   1: 'a' + 'a' -> 'aa' (id 256, seen 4 times)")
    # each later merge joins a most frequent pair of the text as it then is
    ids = merge(list(b"aaabdaaabac"), first, 256)
    assert max(pair_counts(ids).values()) == pair_counts(ids)[second]
    assert tokenizer.encode("aaabdaaabac") == merge(merge(ids, second, 257), third, 258)


@pytest.mark.parametrize("text", ["Once upon a time, Lily found a shiny rock.", "Zoë 🐸 naïve\n\n  spaces", ""])
def test_decoding_gives_back_exactly_the_text(text):
    tokenizer = BytePairTokenizer.train("Once upon a time, there was a little girl. Once upon a time.", 30)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_merges_shorten_the_text_they_were_learned_on():
    text = "the cat sat on the mat. the cat was happy. " * 20
    lengths = [len(BytePairTokenizer.train(text, n).encode(text)) for n in (0, 10, 40)]
    assert lengths[0] == len(text.encode()) and lengths[0] > lengths[1] > lengths[2]


def test_bad_input_is_one_clear_error():
    with pytest.raises(SlmError, match="num_merges must be a whole number >= 0, not -1"):
        BytePairTokenizer.train("abc", -1)
    with pytest.raises(SlmError, match="text must be some non-empty text"):
        BytePairTokenizer.train("", 5)
