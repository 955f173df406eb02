"""How much faster does a compact vocabulary train? (notebook 07, section 3)

Training tokens/s of the ``cpu`` preset's model (by default) on the preset's data, or on
other stories (``--data``: a folder of real TinyStories, ``synthetic`` or ``tinystories``), with
GPT-2's full vocabulary and with the compact vocabulary of the same stories, one optimizer
step each in alternating rounds in one process (``slm_helpers.speed``). Both datasets are
prepared under ``data/`` the first time.

Also printed:
* steps of models whose head has 4,096 and 10,000 ids (``--sizes``), trained on the compact
  data: what a compact vocabulary of real TinyStories gives (the TinyStories paper kept the
  10K most frequent tokens; the built-in stories, used offline, need only a few hundred);
* the peak memory (resident set) of a process taking a few steps of each, measured in two
  fresh child processes, since one process's peak cannot be split between the two;
* the cost of the other design: GPT-2 ids in the bins, renumbered in every batch, against
  compact ids stored in the bins (what ``slm_helpers.data`` does).

Target: compact >= 2.4x the full vocabulary's tokens/s. The last line is the ratio.

    python benchmarks/compact_vocab.py [--preset cpu] [--data ../shared/data/tinystories-sample]
                                       [--vocab-size K] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
from dataclasses import replace
from pathlib import Path

import torch

from slm_helpers.data import TokenDataset, get_batch, prepare_dataset
from slm_helpers.device import cpu_has_native_bf16
from slm_helpers.presets import get_preset
from slm_helpers.speed import TrainingStep, time_alternately


def peak_memory_mb(model_config, train_config, data_dir: str, steps: int) -> float:
    """Run in a fresh process: the peak resident memory after ``steps`` training steps."""
    step = TrainingStep(model_config, train_config, data_dir)
    for _ in range(steps):
        step()
    status = Path("/proc/self/status")
    if status.is_file():  # VmHWM: this process's own peak (ru_maxrss can carry the parent's over fork and exec)
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 2**10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data", default=None, help="the stories (default: the preset's own source and options)")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="compact: keep K ids (default: the preset's own size, else every id the stories use)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[4096, 10_000], help="other head sizes to time")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    source, options = (args.data, {}) if args.data else (preset.data_source, preset.data_options)
    size = args.vocab_size or preset.vocab_size
    root = Path(__file__).resolve().parent.parent / "data"
    stem = f"{Path(source).name}-{preset.name}" if options else Path(source).name
    quiet = dict(progress=False, log=lambda line: None)
    full = prepare_dataset(source, root / f"{stem}-full", **options, **quiet)
    compact = prepare_dataset(source, root / f"{stem}-compact{size or ''}", vocab="compact", vocab_size=size,
                              **options, **quiet)
    full_data, compact_data = TokenDataset.open(full.path, log=quiet["log"]), TokenDataset.open(compact.path,
                                                                                                log=quiet["log"])
    vocabulary = compact_data.tokenizer.vocabulary
    full_model = preset.model.with_tokenizer(full_data.tokenizer)
    compact_model = preset.model.with_tokenizer(compact_data.tokenizer)
    train_config = replace(preset.train, dtype="float32")
    tokens_per_step = train_config.tokens_per_step(preset.model.block_size)
    print(f"preset {preset.name!r}: {preset.model.n_layer} layers x {preset.model.n_embd}, {tokens_per_step:,} tokens "
          f"per step, fp32 on the CPU, {torch.get_num_threads()} threads; this CPU "
          f"{'has' if cpu_has_native_bf16() else 'lacks'} native bf16")
    print(f"data: {source!r} {options or ''}; compact vocabulary: {compact_data.vocab_size:,} ids (of "
          f"{full_data.vocab_size:,}), covering {vocabulary.coverage['train']:.2%} of the training tokens and "
          f"{vocabulary.coverage['validation']:.2%} of the validation tokens")

    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1, maxtasksperchild=1) as pool:  # first, while this process is still small
        memory = {
            "full": pool.apply(peak_memory_mb, (full_model, train_config, full.path, args.memory_steps)),
            "compact": pool.apply(peak_memory_mb, (compact_model, train_config, compact.path, args.memory_steps)),
        }
    print(f"peak memory of a process training {args.memory_steps} steps: full {memory['full']:,.0f} MB, compact "
          f"{memory['compact']:,.0f} MB (the full one {memory['full'] / memory['compact']:.1f}x the compact one)")

    steps = {"full": TrainingStep(full_model, train_config, full.path),
             "compact": TrainingStep(compact_model, train_config, compact.path)}
    for other in args.sizes:  # fewer ids than the compact vocabulary: a dataset of their own; more: a larger head
        data_dir = compact.path
        if other < compact_data.vocab_size:
            data_dir = prepare_dataset(source, root / f"{stem}-compact{other}", vocab="compact", vocab_size=other,
                                       **options, **quiet).path
        steps[f"{other:,}-id"] = TrainingStep(replace(compact_model, vocab_size=other), train_config, data_dir)
    seconds = time_alternately(steps, rounds=args.rounds)
    speed = {name: tokens_per_step / s for name, s in seconds.items()}
    for name in steps:
        print(f"{name:>12} vocabulary: {seconds[name] * 1e3:7.0f} ms per step, {speed[name]:8,.0f} tokens/s "
              f"({speed[name] / speed['full']:.2f}x the full vocabulary's)")

    generator = torch.Generator().manual_seed(0)
    B, T = train_config.batch_size, preset.model.block_size

    def stored():
        return get_batch(compact.path, "train", B, T, "cpu", generator)

    def remapped():
        x, y = get_batch(full.path, "train", B, T, "cpu", generator)
        return torch.from_numpy(vocabulary.to_compact(x)), torch.from_numpy(vocabulary.to_compact(y))

    batch = time_alternately({"stored": stored, "remapped": remapped}, rounds=5, calls=50)
    print(f"a batch with compact ids stored in the bins: {batch['stored'] * 1e6:,.0f} us; GPT-2 ids renumbered per "
          f"batch: {batch['remapped'] * 1e6:,.0f} us (a step takes {seconds['compact'] * 1e6:,.0f} us)")
    print(f"compact vocabulary: {speed['compact'] / speed['full']:.2f}x the full vocabulary's tokens/s")


if __name__ == "__main__":
    main()
