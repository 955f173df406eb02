"""Request records: the format (Words, Features, Story), parsing TinyStoriesInstruct's lines
into records, and records made from stories (see :mod:`slm_helpers.instruct`)."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from slm_helpers.errors import SlmError
from slm_helpers.tokenizer import EOT_TEXT

INSTRUCT_HUB = "roneneldan/TinyStoriesInstruct"
FEATURES = ("Dialogue", "BadEnding", "MoralValue", "Twist", "Foreshadowing", "Conflict")
HEADERS = ("Summary", "Words", "Features", "Random sentence")
HEADER_LINE = re.compile(r"^(Summary|Words|Features|Random sentence):\s*(.*)$")
STORY_LINE = re.compile(r"^Story:\s*(.*)$")
WORD = re.compile(r"[A-Za-z]+")
QUOTED_SPEECH = re.compile(r"[\"“][^\"“”]*[A-Za-z][^\"“”]*[\"”]")
META_FILE = "requests.json"
FORMAT_VERSION = 1
# Common words a request never asks for: the words that open and join every story.
STOP_WORDS = frozenset("""
a about above after again all also am an and any are around as at away back be because been before being
big but by came can could day did do does doing down each even ever every for from get go going got had
has have having he her here hers him his how if in into is it its just know let like little made make many
me more most much my new next no not now of off oh on once one only or other our out over own put said saw
say see she should so some something soon still such than that the their them then there these they
thing things this those through time to too took two up upon us very want wanted was way we went were what
when where which while who why will with would yes you your
""".split())


class RequestError(SlmError):
    """A request (words and features) that cannot be written as a prompt."""


@dataclass(frozen=True)
class Record:
    """One story with what was asked of it."""

    story: str
    words: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    summary: str = ""

    def prompt(self) -> str:
        return format_prompt(self.words, self.features)


def check_request(words, features=()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words and features of a request, checked: words are single words of letters
    (a list, or one string separated by commas), at least one; features are among
    :data:`FEATURES` (any case). Raises :class:`RequestError` saying what is wrong."""
    if isinstance(words, str):
        words = list(_split_list(words))
    if isinstance(features, str):
        features = list(_split_list(features))
    if not isinstance(words, (list, tuple)) or not words:
        raise RequestError("give at least one word, e.g. words=['dog', 'ball', 'happy'] (--words dog,ball,happy)")
    bad = [w for w in words if not isinstance(w, str) or not WORD.fullmatch(w.strip())]
    if bad:
        raise RequestError(f"each word must be one word of letters, not {bad[0]!r}: e.g. words=['dog', 'ball']")
    known = {f.lower(): f for f in FEATURES}
    if not isinstance(features, (list, tuple)):
        raise RequestError(f"features must be a list of names such as ['Dialogue'], not {type(features).__name__}")
    unknown = [f for f in features if not isinstance(f, str) or f.strip().lower() not in known]
    if unknown:
        raise RequestError(f"unknown feature {unknown[0]!r}: choose among {', '.join(FEATURES)}")
    return tuple(w.strip().lower() for w in words), tuple(dict.fromkeys(known[f.strip().lower()] for f in features))


def request_prompt(words, features=()) -> str:
    """The prompt asking for a story that uses ``words`` and has ``features``, checked
    (:func:`check_request`): e.g. ``request_prompt("dog, ball", ["Dialogue"])``."""
    return format_prompt(*check_request(words, features))


def story_prompt(prompt: str = "", words=None, features=None,
                 names: tuple[str, str, str] = ("a beginning", "words", "features")) -> str:
    """What a model continues: ``prompt`` as it is, or, when ``words`` (and ``features``) are
    given (not None), the request prompt for them (:func:`request_prompt`). A beginning and a
    request together, or features without words, is a :class:`RequestError`; ``names`` are what
    the message calls the three (the command line says ``--prompt``, ``--words``, ``--features``)."""
    beginning, words_name, features_name = names
    if words is None and features is None:
        return prompt
    if prompt:
        raise RequestError(f"give {beginning}, or {words_name} (and {features_name}) for a request, not both")
    if words is None:
        raise RequestError(f"{features_name} need {words_name}: say which words the story must use")
    return request_prompt(words, features or ())


def format_prompt(words: Sequence[str], features: Sequence[str] = ()) -> str:
    """The text a fine-tuned model continues with a story: the Words line, the Features line
    when there are features, then ``Story:`` (a record's own words, as they are)."""
    lines = [f"Words: {', '.join(words)}"] if words else []
    if features:
        lines.append(f"Features: {', '.join(features)}")
    return "\n".join([*lines, "Story:", ""])


def format_text() -> str:
    """Every piece of text a prompt can hold apart from its words: a compact vocabulary keeps
    these tokens' ids even when its stories never use them, so a model trained on stories
    alone can later be fine-tuned to read requests (:func:`slm_helpers.vocab.build_vocabulary`)."""
    return "\n".join([format_prompt(["a", "b"], FEATURES), *(f"{h}: a" for h in HEADERS)])


# ----------------------------------------------------------------------------- parsing the hub's files


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _record(lines: list[str], first_block: bool) -> Record | str:
    """The record of one block of lines, or why there is none."""
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        return "empty"
    if first_block and not (HEADER_LINE.match(first) or STORY_LINE.match(first)):
        return "fragment"  # a file that begins in the middle of a record
    headers: dict[str, str] = {}
    story: list[str] = []
    for line in lines:
        if match := HEADER_LINE.match(line):
            headers[match.group(1)] = match.group(2).strip()
        elif match := STORY_LINE.match(line):
            story.append(match.group(1))
        else:
            story.append(line)  # the story's lines, with or without a Story: line before them
    text = "\n".join(story).strip()
    if not text:
        return "no story"
    return Record(text, _split_list(headers.get("Words", "")), _split_list(headers.get("Features", "")),
                  headers.get("Summary", ""))


def parse_records(lines: Iterable[str], skipped: Counter | None = None) -> Iterator[Record]:
    """The records in a file's lines (one row per line, as the hub serves it): each block of
    lines up to ``<|endoftext|>``. The file's first block, when it begins in the middle of a
    record (no header and no ``Story:`` first), and a block that holds no story are skipped,
    and counted in ``skipped`` by reason."""
    skipped = Counter() if skipped is None else skipped
    block: list[str] = []
    first_block = True
    for line in itertools.chain(lines, [EOT_TEXT]):
        line = line.rstrip("\r\n")
        if line.strip() != EOT_TEXT:
            block.append(line)
            continue
        record = _record(block, first_block)
        block, first_block = [], first_block and record == "empty"
        if isinstance(record, Record):
            yield record
        elif record != "empty":
            skipped[record] += 1


# ----------------------------------------------------------------------------- records made from stories


def beginning(story: str, n_words: int) -> str:
    """The story's text up to its ``n_words``-th word: the part a short window holds."""
    ends = [m.end() for m in itertools.islice(WORD.finditer(story), n_words)]
    return story[: ends[-1]] if ends else story


def content_words(text: str) -> list[str]:
    """The words a request could ask for, in order, once each: lower-case in the text (so not
    names), three letters or more, not among :data:`STOP_WORDS`."""
    words = [w for w in WORD.findall(text) if w.islower() and len(w) >= 3 and w not in STOP_WORDS]
    return list(dict.fromkeys(words))


def has_dialogue(story: str) -> bool:
    """Whether the story holds quoted speech."""
    return QUOTED_SPEECH.search(story) is not None


def record_from_story(story: str, rng: random.Random, n_words: int = 3, window_words: int = 60) -> Record | None:
    """A record asking for words the story's beginning uses (``n_words`` of its content words,
    chosen at random, from its first ``window_words`` words) and for Dialogue when that
    beginning has quoted speech; ``None`` for a story with too few content words."""
    start = beginning(story, window_words)
    candidates = content_words(start)
    if len(candidates) < n_words:
        return None
    words = tuple(rng.sample(candidates, n_words))
    return Record(story.strip(), words, ("Dialogue",) if has_dialogue(start) else ())


def records_from_stories(stories: Iterable[str], n: int, seed: int = 0, **choice) -> list[Record]:
    """The first ``n`` records made from ``stories`` (see :func:`record_from_story`)."""
    rng = random.Random(seed)
    made = (record_from_story(story, rng, **choice) for story in stories)
    return list(itertools.islice((r for r in made if r is not None), n))
