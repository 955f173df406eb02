"""The command-line tools, above the library: ``python -m slm_helpers.data``,
``python -m slm_helpers.train``, ``python -m slm_helpers.generate``, ``python -m slm_helpers.export`` and
``python -m slm_helpers.app``.

Each parses its arguments, calls the library, and turns what goes wrong into one line
``error: <what is wrong and what to do>``: exit status 1 for an error, 2 for a bad argument
(as argparse does), 130 for Ctrl-C and 143 for SIGTERM, which stop a run as Ctrl-C does
(a checkpoint is saved). A closed pipe (``... | head``) ends the output quietly, as ``cat``
does. Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from slm_helpers.errors import SlmError, Terminated, describe_os_error

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_BROKEN_PIPE = 1, 2, 130, 143, 141
MAX_SEED = 2**63 - 1  # torch's generators take seeds up to this


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its complaint on one line that starts with ``error:``."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (`{self.prog} --help` lists the options)\n")


def _number(kind: type, check: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number >= 1")
non_negative_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
probability = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
seed = _number(int, lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED:,}")


def one_of(choices, what: str) -> Callable[[str], str]:
    """An argparse type that accepts one of ``choices`` and names them all otherwise."""
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}: choose one of {', '.join(choices)}")
        return text
    return parse


def say_error(message: str) -> None:
    """Print ``error: message`` as one line on stderr."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


_TERMINATED: list[bool] = []  # set when SIGTERM arrived, for the exit status


_MAIN_PID: list[int] = []  # the process whose command runs; a forked worker inherits the handler, not the role


def _terminate(signum, frame):
    if _MAIN_PID and os.getpid() != _MAIN_PID[0]:  # a worker forked before it reset SIGTERM: end without a word
        os._exit(128 + signum)
    _TERMINATED.append(True)
    raise Terminated


def interrupted_status() -> int:
    """The exit status of an interruption: 143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_TERMINATED if _TERMINATED else EXIT_INTERRUPTED


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None,
        on_interrupt: str = "interrupted") -> int:
    """Run a command's ``main`` and turn what goes wrong into one line and an exit status."""
    _MAIN_PID[:] = [os.getpid()]
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"\n{on_interrupt}", file=sys.stderr, flush=True)
        if _TERMINATED:  # SIGTERM means now: skip the exit-time joins, which could wait on killed workers
            sys.stdout.flush()
            os._exit(EXIT_TERMINATED)
        return interrupted_status()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except SlmError as error:
        say_error(str(error))
    except OSError as error:
        say_error(describe_os_error(error))
    return EXIT_ERROR


# ----------------------------------------------------------------------------- python -m slm_helpers.data


def data_main(argv: list[str] | None = None) -> int:
    from slm_helpers.data import prepare_dataset
    from slm_helpers.data.dataset import VOCABS
    from slm_helpers.data.sources import SYNTHETIC_DEFAULTS
    from slm_helpers.vocab import MAX_IDS

    parser = ArgumentParser(prog="python -m slm_helpers.data",
                            description="Tokenize stories into train.bin / validation.bin (uint16 memmaps) and "
                                        "meta.json.")
    parser.add_argument("--source", required=True,
                        help="'synthetic', 'tinystories', or a local .txt/.jsonl/.parquet file or folder")
    parser.add_argument("--out-dir", required=True, help="folder to write train.bin, validation.bin and meta.json into")
    parser.add_argument("--train-stories", type=positive_int, default=None,
                        help=f"stories in the train split (synthetic: default {SYNTHETIC_DEFAULTS['train_stories']:,}; "
                             "tinystories: the first N, streamed; default all)")
    parser.add_argument("--validation-stories", type=positive_int, default=None,
                        help="stories in the validation split (synthetic: default "
                             f"{SYNTHETIC_DEFAULTS['validation_stories']:,}; tinystories: the first N; default all)")
    parser.add_argument("--seed", type=seed, default=SYNTHETIC_DEFAULTS["seed"],
                        help="synthetic only: which stories to generate")
    parser.add_argument("--workers", type=positive_int, default=None, help="tokenizer processes (default: all cores)")
    parser.add_argument("--vocab", choices=VOCABS, default="full",
                        help="full: GPT-2's 50,257 ids; compact: only the ids the training split uses (notebook 01); "
                             "trained: a tokenizer learned from the training stories (notebook 09)")
    parser.add_argument("--vocab-size", type=_number(int, lambda v: 2 <= v <= MAX_IDS,
                                                     f"a whole number from 2 to {MAX_IDS:,} (the bins hold uint16)"),
                        default=None, help="with --vocab compact: keep the K-1 most frequent ids and one unknown id; "
                                           "with --vocab trained: its size (e.g. 4096)")
    parser.add_argument("--development", action="store_true",
                        help="make the validation split a development split: one training story in 25, held out to "
                             "tune on (the source's validation stories are not read)")
    parser.add_argument("--overwrite", action="store_true", help="redo a dataset that already exists in --out-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.vocab_size is not None and args.vocab == "full":
        parser.error("--vocab-size is for --vocab compact or --vocab trained")
    if args.vocab == "trained" and args.vocab_size is None:
        parser.error("--vocab trained needs --vocab-size (e.g. 4096)")
    asked = dict(train_stories=args.train_stories, validation_stories=args.validation_stories)
    counts = {k: v for k, v in asked.items() if v is not None}
    if args.source == "synthetic":
        options = {**SYNTHETIC_DEFAULTS, **counts, "seed": args.seed}
    elif args.source == "tinystories":
        options = counts
    else:
        if counts:
            parser.error("--train-stories and --validation-stories are for 'synthetic' and 'tinystories'; a local "
                         "source is read whole")
        options = {}
    if args.development:
        options["development"] = True
    info = prepare_dataset(args.source, args.out_dir, overwrite=args.overwrite, vocab=args.vocab,
                           vocab_size=args.vocab_size, num_workers=args.workers, progress=not args.no_progress,
                           **options)
    print(f"{args.out_dir}: {info.describe()}")
    return 0


def data_command() -> int:
    from slm_helpers.data.prepare import INTERRUPTED

    return run(data_main, on_interrupt=INTERRUPTED)


# ----------------------------------------------------------------------------- python -m slm_helpers.train


def train_main(argv: list[str] | None = None) -> int:
    from slm_helpers.checkpoint import RunFolder
    from slm_helpers.device import DEVICE_PATTERN, DTYPES, choose_device
    from slm_helpers.presets import PRESETS, get_preset
    from slm_helpers.processes import rank_from_environment

    def device(text: str) -> str:
        if not DEVICE_PATTERN.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
        return text

    parser = ArgumentParser(prog="python -m slm_helpers.train", description="Train a GPT on prepared stories.")
    parser.add_argument("--preset", type=one_of(PRESETS, "a preset"), default=None,
                        help="default: $SLM_PRESET, else gpu with CUDA, else cpu")
    parser.add_argument("--data-dir", default=None,
                        help="a prepared dataset, used whatever made it (default: the preset's, prepared if missing)")
    parser.add_argument("--out-dir", default=None, help="where to write weights, checkpoint and history "
                                                        "(default: runs/<preset>)")
    parser.add_argument("--max-iters", type=positive_int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--eval-interval", type=positive_int, default=None,
                        help="evaluate (and save) every N optimizer steps (default: the preset's)")
    parser.add_argument("--init-from", default=None,
                        help="fine-tune: start from these weights (a run's best_model_params.pt) with the preset's "
                             "fine-tuning settings, on --data-dir or the preset's request records (notebook 08)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a run that --out-dir already holds")
    parser.add_argument("--device", type=device, default=None, help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--dtype", type=one_of(("auto", *DTYPES), "a dtype"), default=None,
                        help="the autocast precision: auto, bfloat16, float16 (CUDA only), float32")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.resume and args.overwrite:
        parser.error("--resume continues a run and --overwrite replaces it: give one of them")
    if args.preset is None and os.environ.get("SLM_PRESET") and os.environ["SLM_PRESET"] not in PRESETS:
        parser.error(f"SLM_PRESET={os.environ['SLM_PRESET']!r} is not a preset: choose one of {', '.join(PRESETS)}")

    base = get_preset(args.preset)
    if args.init_from:
        if base.finetune is None:
            parser.error(f"the {base.name} preset has no fine-tuning settings: use --preset ci, cpu or gpu")
        if not Path(args.init_from).is_file():
            parser.error(f"--init-from {args.init_from}: no such file (a run's best_model_params.pt, e.g. "
                         f"{base.out_dir / 'best_model_params.pt'})")
        base = replace(base, train=base.finetune)
    overrides = {k: v for k, v in dict(max_steps=args.max_iters, eval_interval=args.eval_interval, device=args.device,
                                       dtype=args.dtype).items()
                 if v is not None}
    if "max_steps" in overrides and overrides["max_steps"] <= base.train.warmup_steps:
        overrides["warmup_steps"] = overrides["max_steps"] // 10
        print(f"--max-iters {args.max_iters} is within the preset's warmup: warming up over "
              f"{overrides['warmup_steps']} steps")
    preset = replace(base, train=replace(base.train, **overrides))
    choose_device(preset.train.device)  # a device this machine lacks is an error before anything is prepared
    out_dir = Path(args.out_dir) if args.out_dir else preset.finetune_dir if args.init_from else preset.out_dir
    folder = RunFolder(out_dir)
    # Process 0 holds the run's folder from here to the end, and checks it before a long preparation.
    with folder.held() if rank_from_environment() == 0 else contextlib.nullcontext():
        folder.check_start(args.resume, args.overwrite)
        return _train(preset, folder, args)


def _train(preset, folder, args) -> int:
    import torch

    from slm_helpers.data import TokenDataset, preset_dataset
    from slm_helpers.instruct import is_requests_folder, preset_requests
    from slm_helpers.processes import group_left_on_exit
    from slm_helpers.processes import start as start_processes
    from slm_helpers.train import train

    with group_left_on_exit():
        rank, _, world_size = start_processes(preset.train.device)  # long timeout: rank 0 may prepare the data first
        if args.init_from and rank == 0:  # fine-tuning: the data is read in the tokenizer of the weights
            data = _explicit_data_dir(args.data_dir) if args.data_dir else preset_requests(preset)
            print(f"fine-tuning {args.init_from} on {data}")
        elif args.init_from:
            data = None  # rank 0 finds or makes the records; the others wait for its folder below
        elif args.data_dir and is_requests_folder(args.data_dir):
            raise SlmError(f"{args.data_dir} holds request records, which fine-tune a trained model: add --init-from "
                           f"{preset.out_dir / 'best_model_params.pt'} (or another run's weights)")
        elif rank == 0:
            data = TokenDataset.open(_explicit_data_dir(args.data_dir)) if args.data_dir else \
                preset_dataset(preset, progress=not args.no_progress)
            print(f"training on {data.path}: {data.info.splits['train'].tokens:,} train tokens from "
                  f"{data.info.source!r}")
        if world_size > 1:  # every process trains on the data rank 0 found or prepared
            shared = [str(data if args.init_from else data.path) if rank == 0 else None]
            torch.distributed.broadcast_object_list(shared, src=0)
            if rank:
                data = shared[0] if args.init_from else TokenDataset.open(shared[0])
        result = train(preset, data_dir=data, out_dir=folder.path, resume=args.resume, overwrite=args.overwrite,
                       progress=not args.no_progress, init_from=args.init_from)
    max_steps = preset.train.max_steps
    if result.interrupted:
        if rank == 0:
            print(f"interrupted at step {result.steps:,} of {max_steps:,}; --resume continues", file=sys.stderr)
        return interrupted_status()
    if rank != 0:
        return 0
    if result.steps_run == 0:
        print(f"already finished: {result.steps:,} of {max_steps:,} steps, best validation loss "
              f"{result.best_val_loss:.4f}; files in {result.out_dir} (--overwrite starts a new run)")
        return 0
    print(f"done: {result.steps:,} steps, best validation loss {result.best_val_loss:.4f}, "
          f"{result.tokens_per_second:,.0f} tokens/s; files in {result.out_dir}")
    return 0


def _explicit_data_dir(data_dir: str) -> Path:
    """A ``--data-dir`` must hold a dataset: only a preset's own folder is prepared on demand,
    so a mistyped folder is never silently made into a new dataset."""
    from slm_helpers.data import META_FILE
    from slm_helpers.errors import DataError
    from slm_helpers.instruct import is_requests_folder

    path = Path(data_dir)
    if not (path / META_FILE).is_file() and not is_requests_folder(path):
        if not path.exists():
            raise DataError(f"{path} does not exist: --data-dir names a prepared dataset (prepare one with python -m "
                            f"slm_helpers.data --out-dir {path} ...), or leave it out to use the preset's own")
        others = sorted(p.name for p in path.iterdir())[:5] if path.is_dir() else []
        held = f" but other files ({', '.join(others)})" if others else ""
        raise DataError(f"{path} holds no complete dataset (no {META_FILE}){held}: prepare one there with python -m "
                        f"slm_helpers.data --out-dir {path} ..., or leave out --data-dir to use the preset's own")
    return path


def train_command() -> int:
    return run(train_main, on_interrupt="interrupted before training started: no run was written")


# ----------------------------------------------------------------------------- python -m slm_helpers.generate


def generate_main(argv: list[str] | None = None) -> int:
    from slm_helpers.checkpoint import load_model
    from slm_helpers.device import choose_device
    from slm_helpers.generate import stream_story
    from slm_helpers.generate.sampling import MAX_NEW_TOKENS, TEMPERATURE, TOP_K, TOP_P
    from slm_helpers.instruct import FEATURES, RequestError, story_prompt

    parser = ArgumentParser(prog="python -m slm_helpers.generate", description="Write a story with a trained GPT.")
    parser.add_argument("--checkpoint", required=True, help="best_model_params.pt or checkpoint.pt")
    parser.add_argument("--prompt", default="", help="how the story begins (empty: the model starts a story itself)")
    parser.add_argument("--words", default=None,
                        help="ask a fine-tuned model (notebook 08) for a story using these words: dog,ball,happy")
    parser.add_argument("--features", default=None, help=f"with --words: any of {','.join(FEATURES)}")
    parser.add_argument("--max-new-tokens", type=positive_int, default=MAX_NEW_TOKENS)
    parser.add_argument("--temperature", type=non_negative_float, default=TEMPERATURE, help="0 = greedy")
    parser.add_argument("--top-k", type=positive_int, default=TOP_K)
    parser.add_argument("--top-p", type=probability, default=TOP_P)
    parser.add_argument("--seed", type=seed, default=None, help="the same seed writes the same story")
    parser.add_argument("--no-kv-cache", action="store_true", help="recompute the whole context at every token")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    args = parser.parse_args(argv)
    try:
        args.prompt = story_prompt(args.prompt, args.words, args.features, ("--prompt", "--words", "--features"))
    except RequestError as error:
        parser.error(str(error))
    device, _ = choose_device(args.device)  # a device this machine lacks is an error before any loading
    model, tokenizer = load_model(args.checkpoint, device)
    pieces = stream_story(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
                          args.top_p, args.seed, use_kv_cache=not args.no_kv_cache,
                          log=lambda message: print(message, file=sys.stderr))
    print(args.prompt, end="", flush=True)
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
    return 0


def generate_command() -> int:
    return run(generate_main)


# ----------------------------------------------------------------------------- python -m slm_helpers.export


def export_main(argv: list[str] | None = None) -> int:
    from slm_helpers.export import export_model

    parser = ArgumentParser(prog="python -m slm_helpers.export",
                            description="Write a trained model as a folder that Hugging Face transformers loads.")
    parser.add_argument("--checkpoint", required=True, help="a run's best_model_params.pt (or checkpoint.pt)")
    parser.add_argument("--out-dir", required=True, help="the folder to write (config, weights, tokenizer, card)")
    parser.add_argument("--overwrite", action="store_true", help="replace the folder if it holds files")
    args = parser.parse_args(argv)
    export_model(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    return 0


def export_command() -> int:
    return run(export_main, on_interrupt="interrupted: nothing was written")


# ----------------------------------------------------------------------------- python -m slm_helpers.app


def app_main(argv: list[str] | None = None) -> int:
    from slm_helpers.app import story_box

    parser = ArgumentParser(prog="python -m slm_helpers.app", description="A story box in the browser.")
    parser.add_argument("--checkpoint", required=True, help="a run's best_model_params.pt (or checkpoint.pt)")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let other machines of the network in")
    parser.add_argument("--port", type=positive_int, default=7860)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--share", action="store_true", help="a public link for 72 hours, through Gradio's servers")
    args = parser.parse_args(argv)
    story_box(args.checkpoint, args.device).launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


def app_command() -> int:
    return run(app_main, on_interrupt="the story box is closed")
