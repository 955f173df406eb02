"""Stories in, uint16 token memmaps out; random training windows back.

``prepare_dataset`` turns a source of stories into a folder holding

* ``train.bin`` and ``validation.bin``: every story's GPT-2 token ids followed by
  ``<|endoftext|>``, one after another, as raw little-endian uint16 (2 bytes a token: the
  50,257 ids fit under 65,536, and half the bytes of int32);
* ``meta.json``: where the tokens came from and how many there are.

Sources: ``"tinystories"`` (the real dataset from the Hugging Face hub, as the original
script did; streamed when only its first stories are wanted), ``"synthetic"`` (the built-in generator in :mod:`slm_helpers.stories`, no
internet needed) or a local ``.txt`` / ``.jsonl`` / ``.parquet`` file or folder.

Preparing streams: stories are tokenized in parallel on all cores, chunk by chunk, and
appended to the file, so memory stays flat however large the corpus is. It is idempotent
(a complete dataset is reused) and atomic (files are written under temporary names and
``meta.json``, written last, marks a dataset complete).

Run ``python -m slm_helpers.data --help`` for the same from a terminal.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slm_helpers.stories import generate_stories, is_validation_story
from slm_helpers.vocab import (
    MAX_IDS, VOCAB_FILE, CompactVocabulary, build_vocabulary, load_vocabulary, save_vocabulary, with_coverage,
)
from slm_helpers.tokenizer import get_tokenizer

SPLITS = ("train", "validation")
TOKEN_DTYPE = np.uint16
META_FILE = "meta.json"
FORMAT_VERSION = 1
CHUNK_STORIES = 1024  # stories a worker tokenizes per task
LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")
EOT_TEXT = "<|endoftext|>"
LOCK_FILE = ".prepare.lock"
SYNTHETIC_DEFAULTS = dict(train_stories=20_000, validation_stories=1_000, seed=0)
MIXED = "mixed"  # a stream of stories of both splits, told apart by is_validation_story


class DataError(ValueError):
    """Bad input for preparing or reading a dataset; the message says what is wrong."""


@dataclass
class SplitInfo:
    file: str
    tokens: int
    stories: int


@dataclass
class DatasetInfo:
    """What a prepared dataset folder holds (the content of its ``meta.json``)."""

    source: str
    source_options: dict
    tokenizer: str
    n_vocab: int
    eot_token: int
    dtype: str
    splits: dict[str, SplitInfo]
    format_version: int = FORMAT_VERSION
    vocab: str = "full"  # "full": GPT-2's ids; "compact": renumbered, mapping in vocab.json
    vocab_size_asked: int | None = None  # compact only: the size asked for (None: every id used)
    path: str = field(default="", compare=False)

    def describe(self) -> str:
        vocab = "" if self.vocab == "full" else f", compact vocabulary of {self.n_vocab:,} ids"
        lines = [f"dataset from {self.source!r} ({self.tokenizer}{vocab}, {self.dtype}):"]
        for split in self.splits.values():
            megabytes = split.tokens * np.dtype(self.dtype).itemsize / 1e6
            lines.append(f"  {split.file:<15} {split.stories:>10,} stories {split.tokens:>13,} tokens {megabytes:>9.2f} MB")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- sources


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
        raise HubUnreachable(f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}") from None

    def texts(split: str) -> Iterator[str]:
        read = 0
        try:
            for example in itertools.islice(hub[split], counts[split]):
                read += 1
                yield example["text"]
        except Exception as error:  # the connection dropped part-way
            raise DataError(f"reading {TINYSTORIES} ({split}) failed after {read:,} stories ({type(error).__name__}: "
                            f"{str(error).splitlines()[0][:200] if str(error) else ''}): run the same command again") from None

    return {split: texts(split) for split in SPLITS}


def _check_text_file(path: Path) -> bool:
    """Refuse a ``.txt`` that is not UTF-8 text; return whether it holds ``<|endoftext|>``."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(f"{path} is UTF-16 text: save it as UTF-8 (stories separated by {EOT_TEXT}, or one per line)")
        if b"\x00" in head:
            raise DataError(f"{path} holds NUL bytes, so it is not a text file: give a UTF-8 .txt, .jsonl or .parquet file")
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
            _check_positive_int(name, options.get(name), DataError, " or None" if allow_none else "")


def open_source(source: str | os.PathLike, log: Callable[[str], None] = print, **options) -> dict[str, Iterable[str]]:
    """The stories of each split, as lazy iterables of strings (under the key ``MIXED`` when
    one stream holds both splits and a hash of each story decides).

    ``source`` is ``"synthetic"`` (options: ``train_stories``, ``validation_stories``, ``seed``),
    ``"tinystories"`` (options: ``train_stories``, ``validation_stories``, the first stories of
    each split, ``None`` for all) or a local path.
    """
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
    raise DataError(f"Unknown source {str(source)!r}: use 'synthetic', 'tinystories' or the path of a local file or folder.")


# ----------------------------------------------------------------------------- tokenizing


def _tokenize_chunk(task: tuple[str, list[str]]) -> dict[str, tuple[np.ndarray, int]]:
    """Token ids of a chunk of stories, each followed by <|endoftext|>, as one uint16 array
    per split, with the number of stories in it.

    Lives at module level so worker processes can import it (spawn cannot pickle a
    function defined in a notebook cell)."""
    stream, stories = task
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    for story in stories:
        split = stream if stream != MIXED else ("validation" if is_validation_story(story) else "train")
        by_split[split].append(story)
    return {split: (_encode_stories(texts), len(texts)) for split, texts in by_split.items() if texts}


def _encode_stories(stories: list[str]) -> np.ndarray:
    """``encode_ordinary(story) + [eot]`` for every story, concatenated, as uint16.

    Fast path: join the stories with <|endoftext|> and encode once with only that special
    token allowed; tiktoken encodes the text between special tokens separately, so the ids are
    identical to encoding story by story. A story that itself contains the text
    "<|endoftext|>" must not be split there, so such chunks take the story-by-story path."""
    tokenizer = get_tokenizer()
    if not any(EOT_TEXT in story for story in stories):
        joined = EOT_TEXT.join(stories) + EOT_TEXT
        return tokenizer.encode_to_numpy(joined, allowed_special={EOT_TEXT}).astype(TOKEN_DTYPE)
    ids: list[int] = []
    for story in stories:
        ids += tokenizer.encode_ordinary(story)
        ids.append(tokenizer.eot_token)
    return np.array(ids, dtype=TOKEN_DTYPE)


def _ignore_interrupts() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops them (no worker tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _progress(desc: str, total: int | None, disable: bool):
    from tqdm.auto import tqdm  # one live bar in JupyterLab and Colab, text in a terminal

    return tqdm(desc=desc, total=total, unit=" stories", unit_scale=True, disable=disable, mininterval=0.5)


def _tokenize_in_pool(streams: dict[str, Iterable[str]], workers: int, write: Callable[[Iterator], dict]) -> dict:
    """``write(results)``, where ``results`` are the tokenized chunks of every stream, in order,
    computed by ``workers`` processes (in this process if 1).

    On Ctrl-C or an error the pool is stopped cleanly: no new chunk is handed out, the chunks
    already handed out finish and are dropped, then the workers exit. (``Pool.terminate()`` can hang
    here: a worker blocked writing a large result into a full pipe holds the lock that
    terminating needs.) A second Ctrl-C stops the workers at once."""
    stop = threading.Event()
    tasks = ((stream, chunk) for stream, texts in streams.items() for chunk in _chunks(texts, CHUNK_STORIES))
    tasks = itertools.takewhile(lambda _: not stop.is_set(), tasks)
    if workers == 1:
        return write(map(_tokenize_chunk, tasks))
    pool = multiprocessing.get_context().Pool(workers, initializer=_ignore_interrupts)
    results = pool.imap(_tokenize_chunk, tasks)
    try:
        return write(results)
    except BaseException:  # Ctrl-C, a bad story file, a full disk
        stop.set()
        try:
            for _ in results:  # the few chunks already handed out
                pass
        except KeyboardInterrupt:
            pool.terminate()
            raise
        except Exception:  # the error that stopped us, or another: it is already on its way
            pass
        raise
    finally:
        pool.close()
        pool.join()


def _write_splits(results: Iterator[dict], out_dir: Path, progress) -> dict[str, SplitInfo]:
    """Append the token ids of each tokenized chunk to ``out_dir/<split>.bin.tmp``; memory holds
    a few chunks at a time, never the corpus."""
    infos = {split: SplitInfo(file=f"{split}.bin", tokens=0, stories=0) for split in SPLITS}
    files = {split: open(out_dir / f"{split}.bin.tmp", "wb") for split in SPLITS}
    try:
        for result in results:
            for split, (ids, n) in result.items():
                try:
                    files[split].write(ids.tobytes())
                except OSError as error:  # a full disk: say which file
                    raise OSError(error.errno, error.strerror, files[split].name) from None
                infos[split].tokens += len(ids)
                infos[split].stories += n
                progress.update(n)
    finally:
        for f in files.values():
            try:
                f.close()  # writes what is still buffered: a full disk can show here first
            except OSError as error:
                raise OSError(error.errno, error.strerror, f.name) from None
    return infos


def _check_tokenizer_fits():
    tokenizer = get_tokenizer()
    if tokenizer.n_vocab > np.iinfo(TOKEN_DTYPE).max + 1:
        raise DataError(
            f"The tokenizer has {tokenizer.n_vocab:,} ids, more than {np.dtype(TOKEN_DTYPE).name} can hold "
            f"({np.iinfo(TOKEN_DTYPE).max + 1:,}); store tokens as uint32 for such a vocabulary."
        )
    return tokenizer


# ----------------------------------------------------------------------------- preparing


def read_info(data_dir: str | os.PathLike) -> DatasetInfo | None:
    """The dataset described by ``data_dir/meta.json``, or ``None`` if there is no complete one.
    A ``meta.json`` that cannot be read is a :class:`DataError` naming the file."""
    meta_path = Path(data_dir) / META_FILE
    if not meta_path.is_file():
        return None
    redo = "the dataset is damaged: prepare it again with --overwrite (overwrite=True)"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{meta_path} is not valid JSON ({error}): {redo}") from None
    optional = ("path", "format_version", "vocab", "vocab_size_asked")
    fields = [name for name in DatasetInfo.__dataclass_fields__ if name not in optional]
    missing = [name for name in fields if not isinstance(meta, dict) or name not in meta]
    if missing:
        raise DataError(f"{meta_path} lacks {', '.join(missing)}: {redo}")
    try:
        meta["splits"] = {name: SplitInfo(**meta["splits"][name]) for name in SPLITS}
        info = DatasetInfo(**meta, path=str(Path(data_dir)))
        np.dtype(info.dtype)
        if info.vocab not in VOCABS:
            raise TypeError(f"vocab {info.vocab!r} is not one of {VOCABS}")
    except (KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{meta_path} does not describe both splits ({type(error).__name__}: {error}): {redo}") from None
    return info


def verify_dataset(info: DatasetInfo) -> DatasetInfo:
    """Check that each split's file holds as many tokens as ``meta.json`` says (a copy cut
    short, or a file replaced by hand, is caught here rather than read as data)."""
    itemsize = np.dtype(info.dtype).itemsize
    for split in info.splits.values():
        path = Path(info.path) / split.file
        if not path.is_file():
            raise DataError(f"{path} is missing, though {META_FILE} lists it: prepare the dataset again with --overwrite")
        size = path.stat().st_size
        if size % itemsize:
            raise DataError(f"{path} is {size:,} bytes, not a whole number of {itemsize}-byte tokens: the file is "
                            "damaged; prepare the dataset again with --overwrite (overwrite=True)")
        if size != split.tokens * itemsize:
            raise DataError(
                f"{path} holds {size // itemsize:,} tokens but {META_FILE} says {split.tokens:,}: the file is damaged "
                "or cut short; prepare the dataset again with --overwrite (overwrite=True)"
            )
    if info.vocab == "compact":
        vocabulary = load_vocabulary(info.path)
        if vocabulary.size != info.n_vocab:
            raise DataError(f"{Path(info.path) / VOCAB_FILE} maps {vocabulary.size:,} ids but {META_FILE} says "
                            f"{info.n_vocab:,}: prepare the dataset again with --overwrite (overwrite=True)")
    return info


def dataset_vocabulary(data_dir: str | os.PathLike) -> CompactVocabulary | None:
    """The compact vocabulary of the dataset in ``data_dir``, or ``None`` for GPT-2's own ids."""
    info = read_info(data_dir)
    return load_vocabulary(data_dir) if info is not None and info.vocab == "compact" else None


def check_folder(folder: Path, purpose: str = "the dataset") -> None:
    """A clear error when ``folder`` cannot be a folder for ``purpose``: it is a file, or lies
    below one. Used for datasets here and for runs by :mod:`slm_helpers.train`."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder: choose a folder for {purpose}")
    for parent in folder.parents:
        if parent.exists():  # the first folder that exists: the ones above it do too
            if not parent.is_dir():
                raise DataError(f"{folder} cannot be created: {parent} is a file, not a folder")
            break


@contextlib.contextmanager
def _preparation_lock(out_dir: Path):
    """Only one preparation at a time in a folder: a second one (another terminal, a notebook
    beside a script) is refused while the first runs, so their files never mix and
    ``overwrite`` never deletes what another process is writing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / LOCK_FILE, "a+")
    try:
        try:
            import fcntl
        except ImportError:  # Windows
            print(f"(no file locking on {sys.platform}: do not prepare into {out_dir} from two processes at once)")
            yield
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise DataError(
                f"{out_dir} is being prepared right now by {holder}: wait for it to finish, or choose another folder"
            ) from None
        lock.truncate(0)
        lock.write(f"process {os.getpid()}")
        lock.flush()
        yield
    finally:
        lock.close()


def prepare_dataset(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    vocab: str = "full",
    vocab_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **source_options,
) -> DatasetInfo:
    """Tokenize ``source`` into ``out_dir/{train,validation}.bin`` and ``meta.json``.

    Reuses a complete dataset already in ``out_dir`` made from the same source and options
    (``overwrite=True`` redoes it). ``num_workers`` processes tokenize in parallel (default:
    all cores). See :func:`open_source` for the options each source takes; ``log`` receives
    notices (e.g. how a ``.txt`` without separators is read).

    New tokens go to ``*.bin.tmp`` files, renamed into place at the end, and ``meta.json`` is
    written last: interrupted (Ctrl-C) or failing, the folder never looks complete with
    partial data, and a dataset that was there before stays as it was.

    ``vocab="compact"`` renumbers the ids to those the training split uses (with
    ``vocab_size`` K: its K - 1 most frequent, plus one unknown id), writes the mapping to
    ``vocab.json`` and stores the compact ids in the bins (see :mod:`slm_helpers.vocab`).
    """
    out_dir = Path(out_dir)
    _check_vocab_options(vocab, vocab_size)
    source_name = source if source in ("synthetic", "tinystories") else str(Path(source).expanduser().resolve())
    check_folder(out_dir)
    existing = read_info(out_dir)
    if existing is not None and not overwrite:
        same_vocab = (existing.vocab, existing.vocab_size_asked) == (vocab, vocab_size)
        if existing.source == source_name and existing.source_options == source_options and same_vocab:
            return verify_dataset(existing)
        raise DataError(
            f"{out_dir} already holds a dataset from {existing.source!r} with {existing.source_options} and the "
            f"{existing.vocab} vocabulary; "
            f"pass overwrite=True (--overwrite) to replace it, or choose another folder."
        )
    tokenizer = _check_tokenizer_fits()
    texts = open_source(source, log=log, **source_options)
    with _preparation_lock(out_dir):
        workers = num_workers or os.cpu_count() or 1
        counts = [({**SYNTHETIC_DEFAULTS, **source_options} if source == "synthetic" else source_options).get(f"{split}_stories")
                  for split in SPLITS]
        expected = sum(counts) if source in ("synthetic", "tinystories") and None not in counts else None
        try:
            with _progress("tokenizing", expected, disable=not progress) as bar:
                splits = _tokenize_in_pool(texts, workers, lambda results: _write_splits(results, out_dir, bar))
        except OSError:  # a full disk: free what was written
            for split in SPLITS:
                (out_dir / f"{split}.bin.tmp").unlink(missing_ok=True)
            raise
        found = ", ".join(f"{info.stories:,} {split}" for split, info in splits.items())
        for split, info in splits.items():
            if info.tokens == 0:
                raise DataError(
                    f"The {split} split of {source_name!r} holds no stories (found {found}): a file holds both splits "
                    f"when it has many stories, separated by {EOT_TEXT} or one per line; a folder needs files of both."
                )
        vocabulary = _renumber(out_dir, tokenizer, vocab_size, log) if vocab == "compact" else None
        # Until here an earlier dataset in the folder stayed complete and usable (the new tokens
        # went to *.tmp files). From here until meta.json is written, the folder is incomplete.
        (out_dir / META_FILE).unlink(missing_ok=True)
        for split in SPLITS:
            os.replace(out_dir / f"{split}.bin.tmp", out_dir / f"{split}.bin")
        if vocabulary is None:
            (out_dir / VOCAB_FILE).unlink(missing_ok=True)
        else:
            save_vocabulary(vocabulary, out_dir)

        info = DatasetInfo(
            source=source_name,
            source_options=source_options,
            tokenizer=tokenizer.name,
            n_vocab=vocabulary.size if vocabulary else tokenizer.n_vocab,
            eot_token=int(vocabulary.to_compact([tokenizer.eot_token])[0]) if vocabulary else tokenizer.eot_token,
            dtype=np.dtype(TOKEN_DTYPE).name,
            splits=splits,
            vocab=vocab,
            vocab_size_asked=vocab_size,
            path=str(out_dir),
        )
        meta = {k: v for k, v in asdict(info).items() if k != "path"}
        (out_dir / f"{META_FILE}.tmp").write_text(json.dumps(meta, indent=2))
        os.replace(out_dir / f"{META_FILE}.tmp", out_dir / META_FILE)
    return info


PARTIAL_FILES = ({f"{split}.bin{tmp}" for split in SPLITS for tmp in ("", ".tmp")}
                 | {f"{META_FILE}.tmp", LOCK_FILE, VOCAB_FILE, f"{VOCAB_FILE}.tmp"})
VOCABS = ("full", "compact")
RENUMBER_CHUNK = 1 << 24  # tokens renumbered at a time: 16M uint16 = 32 MB


def _check_vocab_options(vocab: str, vocab_size: int | None) -> None:
    if vocab not in VOCABS:
        raise DataError(f"vocab must be one of {', '.join(VOCABS)}, not {vocab!r}")
    if vocab_size is not None:
        if vocab != "compact":
            raise DataError("vocab_size (--vocab-size) is for vocab='compact' (--vocab compact); the full vocabulary "
                            "is GPT-2's 50,257 ids")
        _check_positive_int("vocab_size", vocab_size, DataError)
        if not 2 <= vocab_size <= MAX_IDS:
            raise DataError(f"vocab_size must be between 2 and {MAX_IDS:,} (the bins hold uint16), not {vocab_size:,}")


def _renumber(out_dir: Path, tokenizer, vocab_size: int | None, log: Callable[[str], None]) -> CompactVocabulary:
    """Count the training split's ids, build the compact vocabulary, and rewrite both splits'
    ``*.bin.tmp`` files in compact ids, a chunk at a time (memory stays flat)."""
    counts = {}
    for split in SPLITS:
        tokens = np.memmap(out_dir / f"{split}.bin.tmp", dtype=TOKEN_DTYPE, mode="r")
        counts[split] = sum((np.bincount(tokens[i : i + RENUMBER_CHUNK], minlength=tokenizer.n_vocab)
                             for i in range(0, len(tokens), RENUMBER_CHUNK)), np.zeros(tokenizer.n_vocab, np.int64))
    vocabulary = with_coverage(build_vocabulary(counts["train"], tokenizer.eot_token, vocab_size), counts)
    for split in SPLITS:
        tokens = np.memmap(out_dir / f"{split}.bin.tmp", dtype=TOKEN_DTYPE, mode="r+")
        for i in range(0, len(tokens), RENUMBER_CHUNK):
            tokens[i : i + RENUMBER_CHUNK] = vocabulary.to_compact(tokens[i : i + RENUMBER_CHUNK])
        tokens.flush()
        del tokens
    log(f"compact vocabulary: {vocabulary.size:,} ids ({len(vocabulary.gpt2_ids):,} GPT-2 ids and one unknown id) "
        f"cover {vocabulary.coverage['train']:.2%} of the training tokens and "
        f"{vocabulary.coverage['validation']:.2%} of the validation tokens")
    return vocabulary


def ensure_dataset(data_dir: str | os.PathLike, source: str | os.PathLike, *, progress: bool = True,
                   log: Callable[[str], None] = print, **source_options) -> DatasetInfo:
    """The complete dataset in ``data_dir``, whatever source and options prepared it (a
    TinyStories copy you prepared yourself, say); prepared from ``source`` only when the
    folder is missing, empty, or holds the partial files of an interrupted preparation.
    Anything else in the folder is left alone, with an error that says so."""
    data_dir = Path(data_dir)
    check_folder(data_dir)
    info = read_info(data_dir)
    if info is not None:
        return verify_dataset(info)
    others = sorted(p.name for p in data_dir.iterdir() if p.name not in PARTIAL_FILES) if data_dir.is_dir() else []
    if others:
        raise DataError(
            f"{data_dir} holds no complete dataset (no {META_FILE}) but other files ({', '.join(others[:5])}): "
            f"prepare one there with python -m slm_helpers.data --out-dir {data_dir}, or choose an empty folder"
        )
    log(f"no dataset in {data_dir}: preparing it from {str(source)!r}")
    return prepare_dataset(source, data_dir, progress=progress, log=log, **source_options)


# ----------------------------------------------------------------------------- reading


def load_tokens(data_dir: str | os.PathLike, split: str) -> np.memmap:
    """The tokens of ``split`` as a read-only uint16 memmap (nothing is read into RAM yet)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, not {split!r}")
    data_dir = Path(data_dir)
    info = read_info(data_dir)
    if info is None:
        raise DataError(
            f"{data_dir} holds no complete dataset (no {META_FILE}). Prepare one first, e.g. "
            f"slm_helpers.data.prepare_dataset('synthetic', '{data_dir}') or notebook 01."
        )
    path = data_dir / info.splits[split].file
    size = path.stat().st_size if path.is_file() else -1
    itemsize = np.dtype(info.dtype).itemsize
    if size != info.splits[split].tokens * itemsize:
        verify_dataset(info)  # raises, saying what is wrong with which file
    return np.memmap(path, dtype=info.dtype, mode="r")


def _check_positive_int(name: str, value, error: type[ValueError] = ValueError, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name} must be a whole number >= 1{alternative}, not {value!r}")


def get_batch(
    data_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    block_size: int,
    device: str = "cpu",
    generator=None,
):
    """``batch_size`` random windows of ``block_size`` tokens from ``split``.

    Returns ``(x, y)``, int64 tensors of shape ``(batch_size, block_size)`` where ``y`` is
    ``x`` shifted left by one: at every position the model learns to predict the next token.
    The memmap is opened anew for every batch; a long-lived one indexed at random grows the
    process's resident memory over a long run (nanoGPT #287). ``generator`` (a
    ``torch.Generator``) makes the draw reproducible.
    """
    import torch

    _check_positive_int("batch_size", batch_size)
    _check_positive_int("block_size", block_size)
    tokens = load_tokens(data_dir, split)
    if len(tokens) <= block_size:
        raise DataError(
            f"The {split} split holds {len(tokens):,} tokens, too few for windows of block_size={block_size} "
            f"(it needs at least {block_size + 1:,}). Prepare more stories or use a smaller block_size."
        )
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    windows = np.stack([tokens[i : i + block_size + 1] for i in starts.tolist()]).astype(np.int64)
    batch = torch.from_numpy(windows)
    x, y = batch[:, :-1], batch[:, 1:]
    if str(device).startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    from slm_helpers import cli

    parser = cli.ArgumentParser(
        prog="python -m slm_helpers.data",
        description="Tokenize stories into train.bin / validation.bin (uint16 memmaps) and meta.json.",
    )
    parser.add_argument("--source", required=True, help="'synthetic', 'tinystories', or a local .txt/.jsonl/.parquet file or folder")
    parser.add_argument("--out-dir", required=True, help="folder to write train.bin, validation.bin and meta.json into")
    parser.add_argument("--train-stories", type=cli.positive_int, default=None,
                        help=f"stories in the train split (synthetic: default {SYNTHETIC_DEFAULTS['train_stories']:,}; "
                             "tinystories: the first N, streamed; default all)")
    parser.add_argument("--validation-stories", type=cli.positive_int, default=None,
                        help=f"stories in the validation split (synthetic: default {SYNTHETIC_DEFAULTS['validation_stories']:,}; "
                             "tinystories: the first N; default all)")
    parser.add_argument("--seed", type=int, default=SYNTHETIC_DEFAULTS["seed"], help="synthetic only: which stories to generate")
    parser.add_argument("--workers", type=cli.positive_int, default=None, help="tokenizer processes (default: all cores)")
    parser.add_argument("--vocab", choices=VOCABS, default="full",
                        help="full: GPT-2's 50,257 ids; compact: only the ids the training split uses (notebook 07)")
    parser.add_argument("--vocab-size", type=cli.positive_int, default=None,
                        help="with --vocab compact: keep the K-1 most frequent ids and one unknown id")
    parser.add_argument("--overwrite", action="store_true", help="redo a dataset that already exists in --out-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.vocab_size is not None and args.vocab != "compact":
        parser.error("--vocab-size is for --vocab compact")

    counts = {k: v for k, v in dict(train_stories=args.train_stories, validation_stories=args.validation_stories).items()
              if v is not None}
    if args.source == "synthetic":
        options = {**SYNTHETIC_DEFAULTS, **counts, "seed": args.seed}
    elif args.source == "tinystories":
        options = counts
    else:
        if counts:
            parser.error("--train-stories and --validation-stories are for 'synthetic' and 'tinystories'; a local "
                         "source is read whole")
        options = {}
    info = prepare_dataset(args.source, args.out_dir, overwrite=args.overwrite, vocab=args.vocab,
                           vocab_size=args.vocab_size, num_workers=args.workers, progress=not args.no_progress,
                           **options)
    print(f"{args.out_dir}: {info.describe()}")
    return 0


INTERRUPTED = ("interrupted: the new tokens were only in *.bin.tmp files, so nothing takes them for a complete "
               "dataset; run the same command again to prepare it")

if __name__ == "__main__":
    from slm_helpers.cli import run

    sys.exit(run(main, on_interrupt=INTERRUPTED))
