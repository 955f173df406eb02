"""Did the story do what was asked? An automatic checker that needs no other model.

For a request's Words: the share of the required words the story uses, counting simple
inflections (-s, -es, -ed, -ing, and a final e dropped: "bake" -> "baking"). For Dialogue:
whether the story holds quoted speech. For BadEnding, a crude test, labelled as such: a sad
word in the story's last two sentences.

It checks the surface only: a "story" that lists the required words scores full marks
(notebook 08 shows it fooled). A better checker would also ask whether the text is a story:
its loss under a good language model, or a judge model, as the TinyStories authors used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from slm_helpers.instruct import WORD, Record, has_dialogue

SAD_WORDS = frozenset("sad cried cry crying tears lost broke broken hurt died never alone angry sorry scared "
                      "gone".split())
SENTENCE_END = re.compile(r"(?<=[.!?])[\"”]?\s+")


def word_forms(word: str) -> set[str]:
    """``word`` and its simple inflections: -s, -es, -ed, -ing, -d, and with a final e dropped."""
    word = word.lower()
    forms = {word, word + "s", word + "es", word + "ed", word + "ing", word + "d"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ed"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    return forms


def words_used(story: str, words: Sequence[str]) -> float:
    """The share of ``words`` that ``story`` uses, in some simple form (1.0 when none are asked)."""
    if not words:
        return 1.0
    present = {w.lower() for w in WORD.findall(story)}
    return sum(bool(word_forms(w) & present) for w in words) / len(words)


def sad_ending(story: str) -> bool:
    """Crude: whether one of :data:`SAD_WORDS` is in the story's last two sentences."""
    sentences = [s for s in SENTENCE_END.split(story.strip()) if s]
    return bool({w.lower() for w in WORD.findall(" ".join(sentences[-2:]))} & SAD_WORDS)


@dataclass(frozen=True)
class Score:
    """The checker's verdict over a set of stories written for requests."""

    words: float  # mean share of the required words used
    all_words: float  # share of stories that use every required word
    dialogue: float | None  # share of the stories asked for Dialogue that have quoted speech (None: none asked)
    stories: int

    def line(self) -> str:
        dialogue = "no Dialogue asked" if self.dialogue is None else f"Dialogue {self.dialogue:.0%}"
        return (f"words used {self.words:.0%} (every word: {self.all_words:.0%}), {dialogue}, over "
                f"{self.stories} stories")


def score(records: Sequence[Record], stories: Sequence[str]) -> Score:
    """How well ``stories`` (the story written for each record's request, prompt removed) do
    what the records ask."""
    if len(records) != len(stories) or not records:
        raise ValueError(f"give one story per record, at least one ({len(records)} records, {len(stories)} stories)")
    shares = [words_used(s, r.words) for r, s in zip(records, stories)]
    asked = [has_dialogue(s) for r, s in zip(records, stories) if "Dialogue" in r.features]
    return Score(sum(shares) / len(shares), sum(x == 1.0 for x in shares) / len(shares),
                 sum(asked) / len(asked) if asked else None, len(stories))
