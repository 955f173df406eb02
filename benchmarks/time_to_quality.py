"""Time to quality: the ``modern`` preset against the ``cpu`` preset, the same seconds each.

Both train on the same real stories, fp32 on this machine's CPU, for ``--seconds`` of
wall-clock time each, one after the other in one run:

* **cpu**: GPT-2's recipe (learned positions, LayerNorm, GELU, tied head, AdamW) on the
  stories' 8,192 most used GPT-2 ids;
* **modern**: rotary positions, RMSNorm, ReLU², QK-norm, an untied head and Muon, on a
  tokenizer of 4,096 ids learned from the training stories (notebook 09).

Both are timed first, alternately on the idle machine (five rounds of four steps each, the
median round; and an evaluation), so that a change in the machine's pace falls on both; each
then gets the steps that fit ``--seconds`` by its timing, evaluations included, with its whole
schedule (warmup, cosine to a tenth) fitted to them. A run's seconds
are those of its timing, so its numbers depend on its steps, not on how busy the machine is
during it; the clock's seconds are printed beside them. Each is evaluated every tenth of its
run on the **development split** (one training story in 25, held out; ``--development``), in
bits per byte, which compares the two tokenizers. TinyStories' validation stories are read
once per model, at the end, to score it.

The ``modern`` preset also trains once for half the seconds, its whole schedule fitted to
them: the last line is the ratio of the seconds each needs to reach the ``cpu`` preset's final
development bits per byte, the ``modern`` preset's being at most half the seconds if that run
gets there, else where its full run's curve first crosses the figure (mid-schedule, at a high
learning rate: an upper bound). Everything printed also goes to ``--results`` (curves, final
figures, and a story from each full run for the same prompts).

    python benchmarks/time_to_quality.py --source ../shared/data/tinystories-sample --seconds 900

Both train in fp32 whatever the CPU offers: on a CPU with native bf16 (AVX512-BF16 or AMX) the
presets would choose bf16 by themselves and train further in the same seconds; ``--dtype
bfloat16`` measures that instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from slm_helpers.checkpoint import load_model
from slm_helpers.data import TokenDataset, open_source, prepare_dataset
from slm_helpers.device import cpu_has_native_bf16
from slm_helpers.evaluate import stories_bits_per_byte
from slm_helpers.generate import write_story
from slm_helpers.presets import get_preset
from slm_helpers.speed import fitted, seconds_to_reach, step_and_evaluation_seconds, steps_that_fit
from slm_helpers.train import train

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ("Once upon a time, there was a little girl named Lily.", "Tom and his dog went to the park.",
           "The sun was hot, so")


EVALUATIONS = 10  # evaluations in a run, besides the one at step 0 and the last
ROUNDS, CALLS = 5, 4  # the presets' steps are timed in 5 rounds of 4 steps each, in turn


def run(preset, data: TokenDataset, timed: dict, seconds: float, validation: list[str], out: Path,
        dtype: str = "float32", stories: bool = True) -> dict:
    """Train ``preset``'s model on ``data`` for the steps that fit ``seconds`` by ``timed``
    (its evaluations included), its whole schedule fitted to them: its development curve
    (projected seconds, bits per byte), then its final model scored once on ``validation``. The
    run's files stay in ``out`` (to export it, or write more stories with it).
    The curve's seconds come from the timing, not the clock, so they do not depend on how busy
    the machine was during the run; the clock's figure is kept beside them."""
    per_step, per_eval = timed["seconds_per_step"], timed["seconds_per_evaluation"]
    steps = steps_that_fit(seconds, timed, EVALUATIONS)
    config = fitted(preset.train, steps, EVALUATIONS, device="cpu", dtype=dtype)
    print(f"{preset.name} ({dtype}): {per_step:.3f} s a step and {per_eval:.1f} s an evaluation here, so "
          f"{steps:,} steps in {seconds:.0f} s", flush=True)
    start = time.perf_counter()
    torch.manual_seed(0)
    history = train(model_config=preset.model.with_tokenizer(data.tokenizer), train_config=config, data_dir=data,
                    out_dir=out, overwrite=True, progress=False, log=lambda line: None).history
    clock = time.perf_counter() - start
    model, tokenizer = load_model(out / "best_model_params.pt")
    points = [(round(r["step"] * per_step + (i + 1) * per_eval, 1), round(r["val_bpb"], 4))
              for i, r in enumerate(history)]
    for t, bpb in points:
        print(f"  {t:7.0f} s  {bpb:.3f} bits per byte (development)", flush=True)
    print(f"  ({clock:.0f} s by the clock)", flush=True)
    held_out = stories_bits_per_byte(model, tokenizer, validation)
    print(f"  TinyStories' validation stories, once: {held_out:.3f} bits per byte", flush=True)
    written = {prompt: write_story(model, tokenizer, prompt, max_new_tokens=150, seed=0, log=lambda line: None)
               for prompt in PROMPTS} if stories else {}
    return dict(preset=preset.name, model=asdict(model.config), train=asdict(config), **timed, steps=steps,
                tokens=steps * config.tokens_per_step(preset.model.block_size), parameters=model.num_params(),
                seconds=seconds, seconds_by_the_clock=round(clock, 1), run=str(out),
                development_curve=points,
                development_bpb=points[-1][1], validation_bpb=round(held_out, 4), stories=written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="real stories: a folder of TinyStories files")
    parser.add_argument("--seconds", type=float, default=900.0,
                        help="seconds of training for each, evaluations included, by the timing")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: autocast, for a CPU with native bf16 (elsewhere ~30x slower)")
    parser.add_argument("--results", default=None,
                        help="default: notebooks/results/modern-preset-time-to-quality.json (-bf16.json with bfloat16)")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "time-to-quality"),
                        help="where the three runs' folders are kept (replaced on each run)")
    args = parser.parse_args()
    suffix = "-bf16" if args.dtype == "bfloat16" else ""
    args.results = args.results or str(ROOT / "notebooks" / "results" / f"modern-preset-time-to-quality{suffix}.json")
    quiet = dict(progress=False, log=lambda line: None)
    validation = list(open_source(args.source, log=lambda line: None)["validation"])

    def development_data(preset) -> TokenDataset:
        folder = ROOT / "data" / f"dev-{Path(args.source).name}-{preset.name}"
        return TokenDataset.open(prepare_dataset(args.source, folder, development=True, vocab=preset.vocab,
                                                 vocab_size=preset.vocab_size, **quiet).path)

    if args.dtype == "bfloat16" and not cpu_has_native_bf16():
        raise SystemExit("error: this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 would run ~30x slower here")
    presets = {name: get_preset(name) for name in ("cpu", "modern")}
    data = {name: development_data(preset) for name, preset in presets.items()}
    info = data["cpu"].info
    print(f"{info.splits['train'].stories:,} training stories, {info.splits['validation'].stories:,} held out "
          f"for development, {len(validation):,} validation stories; {args.dtype} on the CPU "
          f"({torch.get_num_threads()} threads; native bf16: {cpu_has_native_bf16()})", flush=True)
    # Both timed first, in turn, so that the machine's pace falls on both, and a busy machine later changes no
    # step count.
    runs_to_time = {name: (preset.model.with_tokenizer(data[name].tokenizer),
                           replace(preset.train, device="cpu", dtype=args.dtype), data[name])
                    for name, preset in presets.items()}
    timed = step_and_evaluation_seconds(runs_to_time, rounds=ROUNDS, calls=CALLS, dtype=getattr(torch, args.dtype))
    half = args.seconds / 2
    runs_dir = Path(args.runs_dir).resolve()
    runs = {"cpu": run(presets["cpu"], data["cpu"], timed["cpu"], args.seconds, validation, runs_dir / "cpu",
                       args.dtype),
            "modern": run(presets["modern"], data["modern"], timed["modern"], args.seconds, validation,
                          runs_dir / "modern", args.dtype),
            "modern, half the seconds": run(presets["modern"], data["modern"], timed["modern"], half, validation,
                                            runs_dir / "modern-half", args.dtype, stories=False)}
    target = runs["cpu"]["development_bpb"]
    cpu_time = runs["cpu"]["development_curve"][-1][0]
    crossing = seconds_to_reach(runs["modern"]["development_curve"], target)
    half_run = runs["modern, half the seconds"]["development_curve"][-1]  # (its seconds, its final figure)
    half_reaches = half_run[1] <= target
    # The modern preset needs at most: its whole shorter run's seconds if that run gets there, else the
    # time its full run's curve first crosses the target (mid-schedule, so an upper bound).
    candidates = [t for t in (crossing, half_run[0] if half_reaches else None) if t is not None]
    modern_time = min(candidates) if candidates else None
    print(f"after {args.seconds:.0f} s (development): cpu {target:.3f} bits per byte, modern "
          f"{runs['modern']['development_bpb']:.3f}; after {half:.0f} s, the modern preset's own whole run: "
          f"{runs['modern, half the seconds']['development_bpb']:.3f}")
    print("validation, once: " + ", ".join(f"{name} {r['validation_bpb']:.3f}" for name, r in runs.items()))
    ratio = None if modern_time is None else cpu_time / modern_time
    Path(args.results).write_text(json.dumps(dict(
        command=f"python benchmarks/time_to_quality.py --source {args.source} --seconds {args.seconds:g}"
                + (" --dtype bfloat16" if args.dtype == "bfloat16" else ""),
        machine=f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        seconds=args.seconds, timing=f"alternated: {ROUNDS} rounds of {CALLS} steps each, the median round",
        stories={"train": info.splits["train"].stories, "development": info.splits["validation"].stories,
                 "validation": len(validation)},
        runs=runs, modern_curve_crosses_at=crossing, modern_half_reaches=half_reaches,
        seconds_to_cpu_final={"cpu": cpu_time, "modern": modern_time}, ratio=ratio), indent=1,
        ensure_ascii=False) + "\n")
    if modern_time is None:
        print(f"the modern preset never reached {target:.3f} bits per byte")
    else:
        print(f"seconds to reach the cpu preset's final {target:.3f} bits per byte: cpu {cpu_time:.0f} s, modern "
              f"at most {modern_time:.0f} s: at least {ratio:.1f}x less time")


if __name__ == "__main__":
    main()
