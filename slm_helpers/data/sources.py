"""Where stories come from: the built-in generator, TinyStories on the hub, or local files.

:func:`open_source` gives the stories of each split as lazy iterables of strings, whatever
the source:

* ``"synthetic"``: the built-in generator (:mod:`slm_helpers.stories`), no internet needed;
* ``"tinystories"``: the real dataset from the Hugging Face hub, as the original script used
  it; streamed when only its first stories are wanted;
* a local ``.txt`` (stories separated by ``<|endoftext|>``, or one per line), ``.jsonl`` or
  ``.parquet`` file (a ``text`` field), or a folder of them (names containing ``valid`` for
  the validation split).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from slm_helpers.errors import DataError, check_int
from slm_helpers.stories import generate_stories, is_validation_story

SPLITS = ("train", "validation")
MIXED = "mixed"  # a stream of stories of both splits, told apart by stories.is_validation_story
# A stream of training stories only, of which one in DEVELOPMENT_SHARE (by a hash of its text) is
# held out as the development split, the dataset's "validation" split: settings are tuned on it,
# and the real validation stories are never read (so they stay unseen until the end).
DEVELOPMENT = "development"
DEVELOPMENT_SHARE = 25
EOT_TEXT = "<|endoftext|>"
LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")
SYNTHETIC_DEFAULTS = dict(train_stories=20_000, validation_stories=1_000, seed=0)
SOURCES = ("synthetic", "tinystories")


def _synthetic_source(train_stories: int, validation_stories: int, seed: int) -> dict[str, Iterable[str]]:
    return {
        "train": generate_stories(train_stories, "train", seed),
        "validation": generate_stories(validation_stories, "validation", seed),
    }


TINYSTORIES = "roneneldan/TinyStories"  # on the Hugging Face hub: splits "train" and "validation"
HUB_HOST = "huggingface.co"
LOCAL_FILES_HINT = ("TinyStories files you downloaded yourself can be prepared with python -m slm_helpers.data "
                    "--source PATH (.txt separated by <|endoftext|>, .jsonl or .parquet with a 'text' field)")


class HubUnreachable(DataError):
    """The Hugging Face hub could not be reached; ``reason`` says why, in a few words."""

    def __init__(self, reason: str, what_to_do: str = ""):
        self.reason = reason
        super().__init__(f"could not load {TINYSTORIES} from the Hugging Face hub ({reason}): " + (what_to_do or (
            f"without internet, use source 'synthetic' (the built-in stories), or {LOCAL_FILES_HINT}")))


def hub_unreachable_reason(host: str = HUB_HOST) -> str | None:
    """Why the hub cannot be reached, found at once (a name lookup), or ``None``. Without this,
    ``datasets`` retries for about 25 seconds before it gives up. In offline mode
    (``HF_HUB_OFFLINE=1``) ``datasets`` reads its local cache, so nothing is looked up."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None
    import socket

    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        return f"{host} cannot be reached: {error.strerror or error}"
    return None


def first_line(error: Exception) -> str:
    """The first line of an exception's message, at most 200 characters."""
    return str(error).splitlines()[0][:200] if str(error) else ""


def _tinystories_source(train_stories: int | None, validation_stories: int | None) -> dict[str, Iterable[str]]:
    """The hub's own splits. A split whose story count is given is streamed, so only those
    stories are downloaded; a whole split (``None``) is downloaded once into the Hugging Face
    cache, where a second preparation finds it."""
    reason = hub_unreachable_reason()
    if reason:
        raise HubUnreachable(reason)
    counts = {"train": train_stories, "validation": validation_stories}
    try:
        import datasets

        hub = {split: datasets.load_dataset(TINYSTORIES, split=split, streaming=counts[split] is not None)
               for split in SPLITS}
    except Exception as error:  # ConnectionError, an offline cache miss, a proxy...: the hub is out of reach
        raise HubUnreachable(f"{type(error).__name__}: {first_line(error)}") from None

    def texts(split: str) -> Iterator[str]:
        read = 0
        try:
            for example in itertools.islice(hub[split], counts[split]):
                read += 1
                yield example["text"]
        except Exception as error:  # the connection dropped part-way
            raise DataError(f"reading {TINYSTORIES} ({split}) failed after {read:,} stories ({type(error).__name__}: "
                            f"{first_line(error)}): run the same command again") from None

    return {split: texts(split) for split in SPLITS}


def _check_text_file(path: Path) -> bool:
    """Refuse a ``.txt`` that is not UTF-8 text; return whether it holds ``<|endoftext|>``."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(f"{path} is UTF-16 text: save it as UTF-8 (stories separated by {EOT_TEXT}, or one per "
                            "line)")
        if b"\x00" in head:
            raise DataError(f"{path} holds NUL bytes, so it is not a text file: give a UTF-8 .txt, .jsonl or .parquet "
                            "file")
        f.seek(0)
        tail = b""
        while block := f.read(1 << 24):  # a plain byte search: about a second per GB
            if EOT_TEXT.encode() in tail + block:
                return True
            tail = block[-len(EOT_TEXT):]
    return False


def _read_text_file(path: Path, log: Callable[[str], None]) -> Iterator[str]:
    separated = _check_text_file(path)
    if not separated:
        log(f"{path} has no {EOT_TEXT} separators: taking one story per line")
    with open(path, encoding="utf-8") as f:
        try:
            if not separated:
                yield from f
                return
            pending = ""
            while block := f.read(1 << 22):
                pieces = (pending + block).split(EOT_TEXT)
                pending = pieces.pop()
                yield from (p.strip() for p in pieces)
            yield pending.strip()
        except UnicodeDecodeError as error:
            raise DataError(
                f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} cannot be decoded): save it as UTF-8"
            ) from None


def _read_jsonl_file(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{line_number} is not valid JSON ({error.msg}, column {error.colno}): "
                                    'each line must be one object like {"text": "Once upon a time..."}') from None
                text = record.get("text") if isinstance(record, dict) else None
                if not isinstance(record, dict) or "text" not in record:
                    fields = sorted(record) if isinstance(record, dict) else type(record).__name__
                    raise DataError(f"{path}:{line_number} has no 'text' field ({fields}): "
                                    'each line must be one object like {"text": "Once upon a time..."}')
                if not isinstance(text, str):
                    raise DataError(f"{path}:{line_number}: 'text' must be a string, not {json.dumps(text)}")
                yield text
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text: save it as UTF-8 JSON lines") from None


def _read_parquet_file(path: Path) -> Iterator[str]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as error:
        raise DataError(f"{path} is not a parquet file ({str(error).splitlines()[0]})") from None
    if "text" not in table.schema_arrow.names:
        raise DataError(f"{path} has no 'text' column (columns: {table.schema_arrow.names})")
    if not pyarrow.types.is_string(table.schema_arrow.field("text").type) and not pyarrow.types.is_large_string(
            table.schema_arrow.field("text").type):
        raise DataError(f"{path}: the 'text' column holds {table.schema_arrow.field('text').type}, not strings")
    for batch in table.iter_batches(batch_size=1000, columns=["text"]):
        yield from batch.column("text").to_pylist()


def _read_local_file(path: Path, log: Callable[[str], None] = print) -> Iterator[str]:
    """The stories of one local file: ``.txt`` (separated by ``<|endoftext|>``, or one per line
    when the file has no separator), ``.jsonl`` or ``.parquet`` (a ``text`` field)."""
    if path.suffix == ".txt":
        return _read_text_file(path, log)
    if path.suffix == ".jsonl":
        return _read_jsonl_file(path)
    if path.suffix == ".parquet":
        return _read_parquet_file(path)
    raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)}")


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    return (t for t in texts if t and t.strip())


def _local_source(path: Path, log: Callable[[str], None]) -> dict[str, Iterable[str]]:
    def read(p: Path) -> Iterator[str]:
        return _read_local_file(p, log)

    if path.is_file():
        # One file holds both splits: each story's split is decided by a hash of its text (as
        # the generator does), by the workers, in a single pass over the file.
        return {MIXED: _non_empty(read(path))}
    files = sorted(p for p in path.iterdir() if p.suffix in LOCAL_SUFFIXES)
    validation = [p for p in files if "valid" in p.name.lower()]
    train = [p for p in files if p not in validation]
    if not train or not validation:
        raise DataError(
            f"{path} should hold files of both splits: names containing 'valid' for validation, the others for train "
            f"(found {[p.name for p in files]})"
        )
    return {
        "train": _non_empty(itertools.chain.from_iterable(map(read, train))),
        "validation": _non_empty(itertools.chain.from_iterable(map(read, validation))),
    }


def _check_counts(options: dict, names: tuple[str, ...], allow_none: bool = False) -> None:
    for name in names:
        if not (allow_none and options.get(name) is None):
            check_int(name, options.get(name), 1, DataError, " or None" if allow_none else "")


def is_development_story(text: str) -> bool:
    """Whether a training story is held out for the development split: by a hash of its text
    (another hash than :func:`~slm_helpers.stories.is_validation_story`'s), one in
    ``DEVELOPMENT_SHARE``."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=b"dev-split").digest()
    return int.from_bytes(digest, "little") % DEVELOPMENT_SHARE == 0


def split_of(stream: str, story: str) -> str:
    """The split a story of ``stream`` goes to: the stream's own, or, for a stream of both
    (``MIXED``) or of training stories to carve (``DEVELOPMENT``), the one its hash decides."""
    if stream == MIXED:
        return "validation" if is_validation_story(story) else "train"
    if stream == DEVELOPMENT:
        return "validation" if is_development_story(story) else "train"
    return stream


def _development_streams(streams: dict[str, Iterable[str]]) -> dict[str, Iterable[str]]:
    """The training stories alone, as one ``DEVELOPMENT`` stream (the validation stories are
    never read)."""
    if MIXED in streams:
        return {DEVELOPMENT: (s for s in streams[MIXED] if not is_validation_story(s))}
    return {DEVELOPMENT: streams["train"]}


def open_source(source: str | os.PathLike, log: Callable[[str], None] = print, development: bool = False,
                **options) -> dict[str, Iterable[str]]:
    """The stories of each split, as lazy iterables of strings (under the key ``MIXED`` when
    one stream holds both splits and a hash of each story decides).

    ``source`` is ``"synthetic"`` (options: ``train_stories``, ``validation_stories``, ``seed``),
    ``"tinystories"`` (options: ``train_stories``, ``validation_stories``, the first stories of
    each split, ``None`` for all) or a local path.

    ``development=True`` makes the validation split a development split, carved from the
    training stories (one in ``DEVELOPMENT_SHARE``), for tuning: the source's validation
    stories are not read, so a tuned setting has never seen them.
    """
    if development not in (True, False):
        raise DataError(f"development must be True or False, not {development!r}")
    streams = _open_source(source, log, **options)
    return _development_streams(streams) if development else streams


def _open_source(source: str | os.PathLike, log: Callable[[str], None], **options) -> dict[str, Iterable[str]]:
    if source == "synthetic":
        options = {**SYNTHETIC_DEFAULTS, **options}
        _check_counts(options, ("train_stories", "validation_stories"))
        return _synthetic_source(**options)
    if source == "tinystories":
        options = {"train_stories": None, "validation_stories": None, **options}
        _check_counts(options, ("train_stories", "validation_stories"), allow_none=True)
        return _tinystories_source(**options)
    path = Path(source).expanduser()
    if path.exists():
        return _local_source(path, log)
    raise DataError(f"Unknown source {str(source)!r}: use 'synthetic', 'tinystories' or the path of a local file or "
                    "folder.")


