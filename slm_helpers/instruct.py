"""Stories on request: records that pair a request ("Words: ...", "Features: ...") with a
story, where they come from, and the batches that fine-tune a model on them (notebook 08).

TinyStoriesInstruct (``roneneldan/TinyStoriesInstruct`` on the hub) holds records like::

    Summary: Lily steals a new bike and learns that stealing is wrong.
    Words: ride, work, upset
    Features: Dialogue, BadEnding
    Story:

    Lily liked to ride her bike. ...
    <|endoftext|>

The hub serves each file one line per row, so :func:`parse_records` rebuilds records by
collecting lines up to ``<|endoftext|>``; header lines come in any order and any subset, a
Summary can follow the story, a record can lack ``Story:``, and a file can begin in the middle
of a record (a fragment, skipped and counted).

Offline, records are made from stories (:func:`records_from_stories`): Words taken from the
story's beginning, Dialogue when it has quoted speech. The prompt a model is fine-tuned on
(:func:`request_prompt`) keeps only Words and Features, the parts a request gives.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from slm_helpers.errors import DataError, SlmError, check_int
from slm_helpers.folders import check_folder, write_json

INSTRUCT_HUB = "roneneldan/TinyStoriesInstruct"
EOT_TEXT = "<|endoftext|>"
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
        words = [w for w in (part.strip() for part in words.split(",")) if w]
    if isinstance(features, str):
        features = [f for f in (part.strip() for part in features.split(",")) if f]
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


# ----------------------------------------------------------------------------- sources


def _hub_records(counts: dict[str, int], log) -> dict[str, list[Record]]:
    """The first records of each split of TinyStoriesInstruct, streamed."""
    from slm_helpers.data import sources

    reason = sources.hub_unreachable_reason()
    if reason:
        raise sources.HubUnreachable(reason)
    try:
        import datasets

        hub = {split: datasets.load_dataset(INSTRUCT_HUB, split=split, streaming=True) for split in counts}
    except Exception as error:  # the hub is out of reach
        raise sources.HubUnreachable(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
    records, skipped = {}, {}
    for split, n in counts.items():
        skipped[split] = Counter()
        lines = (row["text"] for row in hub[split])
        try:
            records[split] = list(itertools.islice(parse_records(lines, skipped[split]), n))
        except Exception as error:  # the connection broke while streaming
            raise sources.HubUnreachable(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
    for split, reasons in skipped.items():
        if reasons:
            log(f"{INSTRUCT_HUB} ({split}): skipped {', '.join(f'{k} x {v}' for k, v in sorted(reasons.items()))}")
    return records


def _story_records(source: str, counts: dict[str, int], seed: int, window_words: int,
                   log) -> dict[str, list[Record]]:
    """Records made from the stories of ``source`` (``"synthetic"`` or a local path)."""
    from slm_helpers.data.sources import MIXED, open_source
    from slm_helpers.stories import is_validation_story

    options = dict(train_stories=10 * counts["train"], validation_stories=10 * counts["validation"], seed=seed) \
        if source == "synthetic" else {}
    stories = open_source(source, log=log, **options)
    if MIXED in stories:  # one local file: a hash of each story decides its split
        mixed = list(stories[MIXED])
        stories = {"validation": [s for s in mixed if is_validation_story(s)],
                   "train": [s for s in mixed if not is_validation_story(s)]}
    return {split: records_from_stories(stories[split], n, seed + i, window_words=window_words)
            for i, (split, n) in enumerate(counts.items())}


def prepare_requests(source: str | os.PathLike, out_dir: str | os.PathLike, *, train_records: int,
                     validation_records: int, window_words: int = 60, seed: int = 0, overwrite: bool = False,
                     log=print) -> Path:
    """Write the records of ``source`` into ``out_dir`` (``train.jsonl``, ``validation.jsonl``
    and ``requests.json``) and return it; a folder already holding the same is reused.

    ``source``: ``"tinystories"`` (TinyStoriesInstruct's first records, streamed from the hub),
    ``"synthetic"`` (records made from the built-in stories) or a folder or file of stories
    (records made from them, asking for words of their first ``window_words`` words: what a
    model's context holds). Says in one line which source it used."""
    check_int("train_records", train_records, 1, DataError)
    check_int("validation_records", validation_records, 1, DataError)
    check_int("window_words", window_words, 3, DataError)
    out_dir = Path(out_dir)
    check_folder(out_dir, "records of requests", DataError)
    wanted = dict(source=str(source), train_records=train_records, validation_records=validation_records,
                  window_words=window_words, seed=seed)
    meta = out_dir / META_FILE
    if meta.is_file() and not overwrite:
        try:
            held = json.loads(meta.read_text())
        except (OSError, ValueError):
            held = None
        if isinstance(held, dict) and held.get("options") == wanted:
            if held.get("said"):
                log(held["said"])  # the same line as when they were made: which source, whatever is on disk
            return out_dir
        raise DataError(f"{out_dir} already holds other records ({meta}): choose another folder, or overwrite=True "
                        "(--overwrite) to replace them")
    counts = {"train": train_records, "validation": validation_records}
    if str(source) == "tinystories":
        records = _hub_records(counts, log)
        said = f"records: the first {train_records:,} and {validation_records:,} of {INSTRUCT_HUB} (its own requests)"
    else:
        records = _story_records(str(source), counts, seed, window_words, log)
        said = (f"records: made from the stories of {str(source)!r} (Words from each story's beginning, Dialogue from "
                "its quotation marks)")
    log(said)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in records.items():
        if not rows:
            raise DataError(f"{source!r} gave no {split} records: give a source with stories of both splits")
        text = "".join(json.dumps(asdict(r)) + "\n" for r in rows)
        (out_dir / f"{split}.jsonl").write_text(text)
    write_json(dict(format_version=FORMAT_VERSION, options=wanted, said=said,
                    records={s: len(r) for s, r in records.items()},
                    with_words={s: sum(bool(r.words) for r in rows) for s, rows in records.items()}), meta)
    return out_dir


def preset_requests(preset, log=print) -> Path:
    """The folder of a preset's request records, made if missing: TinyStoriesInstruct's for a
    preset of TinyStories; when the hub cannot be reached, records made from the preset's
    fallback stories, saying so in one line."""
    from slm_helpers.data.sources import HubUnreachable

    if not preset.requests:
        raise SlmError(f"the {preset.name} preset has no request records (Preset.requests)")
    try:
        return prepare_requests(preset.data_source, preset.requests_dir_for(preset.data_source), **preset.requests,
                                log=log)
    except HubUnreachable as error:
        if preset.fallback_source is None:
            raise
        folder = preset.requests_dir_for(preset.fallback_source)
        log(f"{INSTRUCT_HUB} is out of reach ({error.reason}): records made from the built-in "
            f"{preset.fallback_source} stories instead, in {folder}")
        return prepare_requests(preset.fallback_source, folder, **preset.requests, log=log)


def read_records(folder: str | os.PathLike, split: str) -> list[Record]:
    """The records of one split of a folder :func:`prepare_requests` wrote."""
    path = Path(folder) / f"{split}.jsonl"
    if not (Path(folder) / META_FILE).is_file() or not path.is_file():
        raise DataError(f"{folder} holds no records of requests (no {META_FILE} or {path.name}): make them with "
                        "prepare_requests(...), or let train --init-from make the preset's")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            rows.append(Record(row["story"], tuple(row["words"]), tuple(row["features"]), row.get("summary", "")))
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}:{number} is not a record: prepare the folder again with --overwrite") from None
    return rows


def is_requests_folder(folder) -> bool:
    return isinstance(folder, (str, os.PathLike)) and (Path(folder) / META_FILE).is_file()


# ----------------------------------------------------------------------------- batches


def example_row(prompt: list[int], story: list[int], block_size: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch row of one record: the inputs are the prompt's ids then the story's (ending with
    ``<|endoftext|>``), cut to ``block_size`` and padded with ``pad``; the targets are the
    inputs shifted by one, with -1 (no loss) where the next token is still the prompt's and
    after the story's end."""
    ids = (prompt + story)[: block_size + 1]
    ends = len(ids) - 1  # targets from here on are padding
    ids = ids + [pad] * (block_size + 1 - len(ids))
    x, y = torch.tensor(ids[:-1]), torch.tensor(ids[1:])
    y[: max(len(prompt) - 1, 0)] = -1  # the target at position len(prompt) - 1 is the story's first token
    y[ends:] = -1
    return x, y


class RequestData:
    """Records as a batch source for :func:`slm_helpers.train.train`: each row of a batch is
    one record from its start, its prompt and story in the model's tokenizer, followed by
    ``<|endoftext|>`` and padded with it. The targets of the prompt's positions and of the
    padding are -1, which the loss ignores: the model is trained to write the story, not to
    predict the request."""

    def __init__(self, records: dict[str, list[Record]], tokenizer, name: str = "records"):
        from slm_helpers.tokenizer import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise SlmError(f"tokenizer must be the model's Tokenizer (model, tokenizer = load_model(path)), not "
                           f"{type(tokenizer).__name__}")
        for split in ("train", "validation"):
            if not records.get(split):
                raise DataError(f"{name} has no {split} records: prepare the folder again with --overwrite")
        self.tokenizer, self.name, self.records = tokenizer, name, records
        self.rows = {split: [self.encode(r) for r in rows] for split, rows in records.items()}
        self.sample_prompt = records["validation"][0].prompt()  # what the run's greedy samples answer

    @classmethod
    def open(cls, folder: str | os.PathLike, tokenizer) -> RequestData:
        return cls({split: read_records(folder, split) for split in ("train", "validation")}, tokenizer, str(folder))

    def encode(self, record: Record) -> tuple[list[int], list[int]]:
        """The prompt's ids and the story's (ending with ``<|endoftext|>``)."""
        story = self.tokenizer.encode_ordinary(record.story) + [self.tokenizer.eot_token]
        return list(self.tokenizer.encode_ordinary(record.prompt())), list(story)

    def example(self, record: Record, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One row: inputs and targets, the targets -1 where no loss is taken."""
        return example_row(*self.encode(record), block_size, self.tokenizer.eot_token)

    def batch(self, split: str, batch_size: int, block_size: int, generator=None, device="cpu"):
        rows = self.rows[split]
        picks = torch.randint(len(rows), (batch_size,), generator=generator).tolist()
        x, y = zip(*(example_row(*rows[i], block_size, self.tokenizer.eot_token) for i in picks))
        return torch.stack(x).to(device), torch.stack(y).to(device)

    def identity(self) -> dict:
        """What a checkpoint records of these records (the shape of
        :meth:`TokenDataset.identity`, and a fingerprint of their text), so that a resume on other
        records, or on a token dataset, is refused."""
        text = "".join(json.dumps(asdict(r)) for split in ("train", "validation") for r in self.records[split])
        return dict(path=self.name, source="records of requests", source_options=None, tokenizer=self.tokenizer.name,
                    splits={s: {"records": len(r)} for s, r in self.records.items()},
                    fingerprint=hashlib.sha256(text.encode()).hexdigest()[:16])
