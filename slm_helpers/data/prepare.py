"""Stories in, token files out: tokenizing in parallel, and a preset's dataset on demand.

:func:`prepare_dataset` turns a source of stories (:mod:`slm_helpers.data.sources`) into a
dataset folder (:mod:`slm_helpers.data.dataset`). It streams: stories are tokenized on all
cores, chunk by chunk, and appended to the files, so memory stays flat however large the
corpus is. It is idempotent (a complete dataset of the same source is reused) and atomic
(tokens go to ``*.bin.tmp`` files and ``meta.json``, written last, marks a dataset
complete). :func:`preset_dataset` is what a preset's run calls: its dataset, opened, and
prepared first when missing.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from slm_helpers.data.dataset import (
    FORMAT_VERSION,
    META_FILE,
    SPLITS,
    TOKEN_DTYPE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    DatasetInfo,
    SplitInfo,
    TokenDataset,
    read_info,
)
from slm_helpers.data.sources import EOT_TEXT, SOURCES, SYNTHETIC_DEFAULTS, HubUnreachable, open_source, split_of
from slm_helpers.data.vocabularies import check_vocab_options, learn_tokenizer, renumber
from slm_helpers.errors import DataError, Terminated
from slm_helpers.folders import check_folder, hold, write_atomically
from slm_helpers.tokenizer import GPT2Tokenizer, Tokenizer, get_tokenizer
from slm_helpers.vocab import CompactVocabulary

CHUNK_STORIES = 1024  # stories a worker tokenizes per task
LOCK_FILE = ".prepare.lock"
PARTIAL_FILES = ({f"{split}.bin{tmp}" for split in SPLITS for tmp in ("", ".tmp")}
                 | {f"{META_FILE}.tmp", LOCK_FILE, VOCAB_FILE, f"{VOCAB_FILE}.tmp", TOKENIZER_FILE,
                    f"{TOKENIZER_FILE}.tmp"})
INTERRUPTED = ("interrupted: the new tokens were only in *.bin.tmp files, so nothing takes them for a complete "
               "dataset; run the same command again to prepare it")


# ----------------------------------------------------------------------------- tokenizing


def _tokenize_chunk(task: tuple[str, list[str], Tokenizer]) -> dict[str, tuple[np.ndarray, int, int]]:
    """Token ids of a chunk of stories, each followed by <|endoftext|>, as one uint16 array
    per split, with the number of stories and of bytes of text in it.

    Lives at module level so worker processes can import it (spawn cannot pickle a
    function defined in a notebook cell)."""
    stream, stories, tokenizer = task
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    for story in stories:
        by_split[split_of(stream, story)].append(story)
    return {split: (tokenizer.encode_stories(texts), len(texts), sum(len(t.encode("utf-8")) for t in texts))
            for split, texts in by_split.items() if texts}


def _quiet_worker() -> None:
    """Workers leave Ctrl-C to the main process, which stops them cleanly (no worker
    tracebacks); SIGTERM ends a worker at once, without a word."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler, which a fork inherits


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _progress(desc: str, total: int | None, disable: bool):
    from tqdm.auto import tqdm  # one live bar in JupyterLab and Colab, text in a terminal

    return tqdm(desc=desc, total=total, unit=" stories", unit_scale=True, disable=disable, mininterval=0.5)


def _end_workers(executor: ProcessPoolExecutor) -> None:
    """End the pool's workers now (SIGTERM, which a worker does not catch) and wait for none of them."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def _in_order(executor: ProcessPoolExecutor, tasks: Iterable, ahead: int) -> Iterator:
    """``_tokenize_chunk`` of every task, in order, with at most ``ahead`` chunks in flight
    (``executor.map`` would take every task at once, and the corpus with it, into memory)."""
    pending: collections.deque = collections.deque()
    for task in tasks:
        pending.append(executor.submit(_tokenize_chunk, task))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _tokenize_in_pool(streams: dict[str, Iterable[str]], tokenizer: Tokenizer, workers: int,
                      write: Callable[[Iterator], dict]) -> dict:
    """``write(results)``, where ``results`` are the tokenized chunks of every stream, in order,
    computed by ``workers`` processes (in this process if 1).

    Stopping is clean whatever stops it. On Ctrl-C no new chunk is handed out, the chunks being
    tokenized finish and are dropped, then the workers exit; a second Ctrl-C stops them at once.
    SIGTERM means now: the workers are ended (if the signal did not already end them) and nothing
    waits for them. A worker killed while it sent a result leaves half a message in the pipe, and
    waiting would hang for ever; so would a ``multiprocessing.Pool``, on a lock a dead worker held.
    The command then leaves without the interpreter's exit-time joins (see ``cli.run``)."""
    stop = threading.Event()
    tasks = ((stream, chunk, tokenizer) for stream, texts in streams.items() for chunk in _chunks(texts, CHUNK_STORIES))
    tasks = itertools.takewhile(lambda _: not stop.is_set(), tasks)
    if workers == 1:
        return write(map(_tokenize_chunk, tasks))
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(), initializer=_quiet_worker)
    try:
        results = write(_in_order(executor, tasks, ahead=2 * workers))
    except BrokenProcessPool:
        raise DataError("a tokenizer worker process died (out of memory, or killed): run the same command again, "
                        "with --workers 1 if it happens again") from None
    except BaseException as error:  # Ctrl-C, SIGTERM, a bad story file, a full disk
        stop.set()
        if isinstance(error, Terminated):
            _end_workers(executor)
            raise
        try:
            executor.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # a second Ctrl-C: now
            _end_workers(executor)
            raise
        raise
    executor.shutdown(wait=True)
    return results


def _write_splits(results: Iterator[dict], out_dir: Path, progress) -> dict[str, SplitInfo]:
    """Append the token ids of each tokenized chunk to ``out_dir/<split>.bin.tmp``; memory holds
    a few chunks at a time, never the corpus."""
    infos = {split: SplitInfo(file=f"{split}.bin", tokens=0, stories=0, bytes=0) for split in SPLITS}
    files = {split: open(out_dir / f"{split}.bin.tmp", "wb") for split in SPLITS}  # noqa: SIM115 - closed below
    try:
        for result in results:
            for split, (ids, stories, text_bytes) in result.items():
                try:
                    files[split].write(ids.tobytes())
                except OSError as error:  # a full disk: say which file
                    raise OSError(error.errno, error.strerror, files[split].name) from None
                infos[split].tokens += len(ids)
                infos[split].stories += stories
                infos[split].bytes += text_bytes
                progress.update(stories)
    finally:
        for f in files.values():
            try:
                f.close()  # writes what is still buffered: a full disk can show here first
            except OSError as error:
                raise OSError(error.errno, error.strerror, f.name) from None
    return infos


# ----------------------------------------------------------------------------- preparing


def _check_tokenizer_fits():
    tokenizer = get_tokenizer()
    if tokenizer.n_vocab > np.iinfo(TOKEN_DTYPE).max + 1:
        raise DataError(
            f"The tokenizer has {tokenizer.n_vocab:,} ids, more than {np.dtype(TOKEN_DTYPE).name} can hold "
            f"({np.iinfo(TOKEN_DTYPE).max + 1:,}); store tokens as uint32 for such a vocabulary."
        )
    return tokenizer


def _existing(out_dir: Path, overwrite: bool) -> DatasetInfo | None:
    """The dataset already in ``out_dir``; with ``overwrite``, a damaged one counts as none."""
    try:
        return read_info(out_dir)
    except DataError:
        if overwrite:
            return None
        raise


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
    (``overwrite=True`` redoes it, also over a damaged one). ``num_workers`` processes
    tokenize in parallel (default: all cores). See :func:`~slm_helpers.data.sources.open_source`
    for the options each source takes; ``log`` receives notices.

    New tokens go to ``*.bin.tmp`` files, renamed into place at the end, and ``meta.json`` is
    written last: interrupted (Ctrl-C) or failing, the folder never looks complete with
    partial data, and a dataset that was there before stays as it was.

    ``vocab="compact"`` renumbers the ids to those the training split uses (with
    ``vocab_size`` K: its K - 1 most frequent, plus one unknown id), writes the mapping to
    ``vocab.json`` and stores the compact ids in the bins (see :mod:`slm_helpers.vocab`).
    ``vocab="trained"`` first learns a tokenizer of ``vocab_size`` ids from the training split's
    first stories (:mod:`slm_helpers.trained_tokenizer`), writes it to ``tokenizer.json``, and
    tokenizes with it.
    """
    out_dir = Path(out_dir)
    check_vocab_options(vocab, vocab_size)
    source_name = source if source in SOURCES else str(Path(source).expanduser().resolve())
    check_folder(out_dir, "the dataset", DataError)
    existing = _existing(out_dir, overwrite)
    if existing is not None and not overwrite:
        same_vocab = (existing.vocab, existing.vocab_size_asked) == (vocab, vocab_size)
        if existing.source == source_name and existing.source_options == source_options and same_vocab:
            return TokenDataset.from_info(existing).info
        raise DataError(
            f"{out_dir} already holds a dataset from {existing.source!r} with {existing.source_options} and the "
            f"{existing.vocab} vocabulary; pass overwrite=True (--overwrite) to replace it, or choose another folder."
        )
    if vocab != "trained":
        _check_tokenizer_fits()
    texts = open_source(source, log=log, **source_options)
    with hold(out_dir, LOCK_FILE, "being prepared", DataError):
        tokenizer = learn_tokenizer(source, source_options, vocab_size, log) if vocab == "trained" else get_tokenizer()
        splits, vocabulary = _tokenize(source, source_name, source_options, texts, tokenizer, out_dir, vocab,
                                       vocab_size, num_workers, progress, log)
        if vocabulary is not None:
            tokenizer = GPT2Tokenizer(vocabulary)
        return _write_dataset(out_dir, source_name, source_options, splits, tokenizer, vocab, vocab_size)


def _tokenize(source, source_name: str, source_options: dict, texts, tokenizer: Tokenizer, out_dir: Path,
              vocab: str, vocab_size: int | None, num_workers: int | None, progress: bool,
              log) -> tuple[dict, CompactVocabulary | None]:
    """The ``*.bin.tmp`` files of both splits (and a compact vocabulary's mapping). On an error
    they are removed; on Ctrl-C they stay, under their temporary names. A trained tokenizer
    encodes on all cores by itself (in threads), so it runs in this process."""
    workers = 1 if vocab == "trained" else num_workers or os.cpu_count() or 1
    options = {**SYNTHETIC_DEFAULTS, **source_options} if source == "synthetic" else source_options
    counts = [options.get(f"{split}_stories") for split in SPLITS]
    expected = (sum(counts) if source in SOURCES and None not in counts and not options.get("development")
                else None)
    try:
        with _progress("tokenizing", expected, disable=not progress) as bar:
            splits = _tokenize_in_pool(texts, tokenizer, workers,
                                       lambda results: _write_splits(results, out_dir, bar))
        found = ", ".join(f"{info.stories:,} {split}" for split, info in splits.items())
        for split, info in splits.items():
            if info.tokens == 0:
                raise DataError(
                    f"The {split} split of {source_name!r} holds no stories (found {found}): a file holds both splits "
                    f"when it has many stories, separated by {EOT_TEXT} or one per line; a folder needs files of both."
                )
        return splits, (renumber(out_dir, vocab_size, log) if vocab == "compact" else None)
    except Exception:  # a bad story file, a full disk...: nothing half-made is left behind
        for split in SPLITS:
            (out_dir / f"{split}.bin.tmp").unlink(missing_ok=True)
        raise


def _write_dataset(out_dir: Path, source_name: str, source_options: dict, splits: dict, tokenizer: Tokenizer,
                   vocab: str, vocab_size: int | None) -> DatasetInfo:
    """Rename the new files into place, then write ``meta.json`` last. Until here an earlier
    dataset in the folder stayed complete and usable; from here until ``meta.json`` is
    written, the folder is incomplete."""
    (out_dir / META_FILE).unlink(missing_ok=True)
    for split in SPLITS:
        os.replace(out_dir / f"{split}.bin.tmp", out_dir / f"{split}.bin")
    (out_dir / VOCAB_FILE).unlink(missing_ok=True)
    (out_dir / TOKENIZER_FILE).unlink(missing_ok=True)
    if vocab == "compact":
        write_atomically(out_dir / VOCAB_FILE, lambda f: f.write(_json(tokenizer.vocabulary.to_dict())))
    elif vocab == "trained":
        tokenizer.save(out_dir / TOKENIZER_FILE)
    info = DatasetInfo(source=source_name, source_options=source_options, tokenizer=tokenizer.name,
                       n_vocab=tokenizer.n_vocab, eot_token=tokenizer.eot_token, dtype=np.dtype(TOKEN_DTYPE).name,
                       splits=splits, format_version=FORMAT_VERSION, vocab=vocab, vocab_size_asked=vocab_size,
                       path=str(out_dir))
    write_atomically(out_dir / META_FILE, lambda f: f.write(info.to_json().encode()))
    return info


def _json(obj) -> bytes:
    import json

    return json.dumps(obj).encode()


def ensure_dataset(data_dir: str | os.PathLike, source: str | os.PathLike, *, progress: bool = True,
                   log: Callable[[str], None] = print, **source_options) -> DatasetInfo:
    """The complete dataset in ``data_dir``, whatever source and options prepared it (a
    TinyStories copy you prepared yourself, say); prepared from ``source`` only when the
    folder is missing, empty, or holds the partial files of an interrupted preparation.
    Anything else in the folder is left alone, with an error that says so."""
    data_dir = Path(data_dir)
    check_folder(data_dir, "the dataset", DataError)
    info = read_info(data_dir)
    if info is not None:
        return TokenDataset.from_info(info).info
    others = sorted(p.name for p in data_dir.iterdir() if p.name not in PARTIAL_FILES) if data_dir.is_dir() else []
    if others:
        raise DataError(
            f"{data_dir} holds no complete dataset (no {META_FILE}) but other files ({', '.join(others[:5])}): "
            f"prepare one there with python -m slm_helpers.data --out-dir {data_dir}, or choose an empty folder"
        )
    log(f"no dataset in {data_dir}: preparing it from {str(source)!r}")
    return prepare_dataset(source, data_dir, progress=progress, log=log, **source_options)


def preset_dataset(preset, progress: bool = True, log: Callable[[str], None] = print) -> TokenDataset:
    """A preset's dataset, opened: the one in its folder if complete, else prepared now. When
    the hub cannot be reached, a preset with a fallback says so in one line and uses it; one
    without (``gpu``) raises :class:`~slm_helpers.data.sources.HubUnreachable`, which says
    what to do. The dataset's ``meta.json`` records the source it came from."""
    options = dict(vocab=preset.vocab, vocab_size=preset.vocab_size)
    try:
        info = ensure_dataset(preset.data_dir, preset.data_source, progress=progress, log=log, **preset.data_options,
                              **options)
    except HubUnreachable as error:
        if preset.fallback_source is None:
            raise HubUnreachable(error.reason, (
                f"the {preset.name} preset trains on all of TinyStories and has no substitute; without internet, "
                f"prepare TinyStories files you downloaded into its folder (python -m slm_helpers.data --source "
                f"PATH --out-dir {preset.data_dir}), or train the cpu preset, which uses the built-in stories"
            )) from None
        fallback_dir = preset.data_dir_for(preset.fallback_source, preset.fallback_options)
        log(f"TinyStories is out of reach ({error.reason}): the {preset.name} preset uses the built-in "
            f"{preset.fallback_source} stories instead, in {fallback_dir}. Online, it streams TinyStories itself; "
            f"to choose, prepare a dataset into {preset.data_dir} (python -m slm_helpers.data --out-dir ...)")
        info = ensure_dataset(fallback_dir, preset.fallback_source, progress=progress, log=log,
                              **preset.fallback_options, **options)
        return TokenDataset.from_info(info)
    asked = (preset.data_source, preset.data_options, preset.vocab, preset.vocab_size)
    if (Path(info.source).name if info.source not in SOURCES else info.source, info.source_options, info.vocab,
            info.vocab_size_asked) != asked and info.source_options != preset.fallback_options:
        log(f"{preset.data_dir} holds a dataset from {info.source!r} with {info.source_options} and the {info.vocab} "
            f"vocabulary, not what the {preset.name} preset prepares ({preset.data_source!r} with "
            f"{preset.data_options} and the {preset.vocab} vocabulary): training on it as it is; to get the "
            f"preset's, prepare it again with --overwrite")
    return TokenDataset.from_info(info)
