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

Three modules: :mod:`~slm_helpers.instruct.records` (the format, parsing, records from
stories), :mod:`~slm_helpers.instruct.folder` (a folder of records, prepared and read) and
:mod:`~slm_helpers.instruct.batches` (masked batches).
"""

from slm_helpers.instruct.batches import REQUESTS_SOURCE, RequestData, example_row
from slm_helpers.instruct.folder import is_requests_folder, prepare_requests, preset_requests, read_records
from slm_helpers.instruct.records import (
    FEATURES,
    INSTRUCT_HUB,
    WORD,
    Record,
    RequestError,
    check_request,
    content_words,
    format_prompt,
    format_text,
    has_dialogue,
    parse_records,
    record_from_story,
    records_from_stories,
    request_prompt,
    story_prompt,
)

__all__ = ["FEATURES", "INSTRUCT_HUB", "REQUESTS_SOURCE", "WORD", "Record", "RequestData", "RequestError",
           "check_request", "content_words", "example_row", "format_prompt", "format_text", "has_dialogue",
           "is_requests_folder", "parse_records", "prepare_requests", "preset_requests", "read_records",
           "record_from_story", "records_from_stories", "request_prompt", "story_prompt"]
