"""Did the story do what was asked? An automatic checker that needs no other model.

For a request's Words: the share of the required words the story uses, counting simple
inflections (-s, -es, -ed, -d, -ing; a final e dropped: "bake" -> "baking"; a final y as
-ies, -ied: "try" -> "tries"). For Dialogue: whether the story holds quoted speech; the score
reports both. For BadEnding there is only :func:`sad_ending`, a crude test labelled as such (a
sad word in the story's last two sentences), which the score leaves out.

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
    """``word`` and its simple inflections: -s, -es, -ed, -ing, -d, with a final e dropped and a
    final y as -ies, -ied. Crude on purpose, and it errs both ways: -d also turns "win" into
    "wind", and irregular forms ("ran" for "run") are missed."""
    word = word.lower()
    forms = {word, word + "s", word + "es", word + "ed", word + "ing", word + "d"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ed"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    return forms


def used_words(story: str, words: Sequence[str]) -> list[str]:
    """The words of ``words`` that ``story`` uses, in some simple form, in their order."""
    present = {w.lower() for w in WORD.findall(story)}
    return [w for w in words if word_forms(w) & present]


def words_used(story: str, words: Sequence[str]) -> float:
    """The share of ``words`` that ``story`` uses, in some simple form (1.0 when none are asked)."""
    return len(used_words(story, words)) / len(words) if words else 1.0


def words_line(story: str, words: Sequence[str]) -> str:
    """How one shown story answers its request: "2 of 3 words (bake, play)"."""
    used = used_words(story, words)
    return f"{len(used)} of {len(words)} words ({', '.join(used) or 'none'})"


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


def answer_requests(model, tokenizer, records: Sequence[Record], temperature: float = 0.8, seed: int = 0,
                    max_new_tokens: int | None = None) -> list[str]:
    """The story ``model`` writes for each record's request (the prompt removed): the ``i``-th
    sampled with seed ``seed + i``, so the same model always writes the same stories. By
    default a story may fill the model's context after its prompt."""
    from slm_helpers.generate import write_story

    stories = []
    for i, record in enumerate(records):
        prompt = record.prompt()
        room = model.config.block_size - len(tokenizer.encode_ordinary(prompt))
        text = write_story(model, tokenizer, prompt, max_new_tokens=max_new_tokens or max(room, 1),
                           temperature=temperature, seed=seed + i, log=lambda line: None)
        stories.append(text[len(prompt):].strip())
    return stories


def ceiling_stories(tokenizer, records: Sequence[Record], block_size: int) -> list[str]:
    """The records' own stories, cut where a model's story for the same prompt must stop (its
    context after the prompt): the best score a model of that context can reach."""
    stories = []
    for record in records:
        room = block_size - len(tokenizer.encode_ordinary(record.prompt()))
        stories.append(tokenizer.decode(tokenizer.encode_ordinary(record.story)[: max(room, 1)]))
    return stories
