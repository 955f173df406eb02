"""A folder of request records (``train.jsonl``, ``validation.jsonl``, ``requests.json``):
from the hub or made from stories, and read back."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from slm_helpers.errors import DataError, SlmError, check_int
from slm_helpers.folders import check_folder, write_json
from slm_helpers.instruct.records import (
    FORMAT_VERSION,
    INSTRUCT_HUB,
    META_FILE,
    Record,
    parse_records,
    records_from_stories,
)


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
        raise sources.HubUnreachable(f"{type(error).__name__}: {sources.first_line(error)}") from None
    records, skipped = {}, {}
    for split, n in counts.items():
        skipped[split] = Counter()
        lines = (row["text"] for row in hub[split])
        try:
            records[split] = list(itertools.islice(parse_records(lines, skipped[split]), n))
        except Exception as error:  # the connection broke while streaming
            raise sources.HubUnreachable(f"{type(error).__name__}: {sources.first_line(error)}") from None
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
        said = (f"records: made from the stories of {str(source)!r} (Words from each story's first {window_words} "
                "words, Dialogue from its quotation marks)")
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
