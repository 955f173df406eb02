"""Time to quality: the ``modern`` preset against the ``cpu`` preset, the same seconds each.

Both train on the same real stories, fp32 on this machine's CPU, for ``--seconds`` of
wall-clock time each, one after the other in one run:

* **cpu**: GPT-2's recipe (learned positions, LayerNorm, GELU, tied head, AdamW) on the
  stories' 8,192 most used GPT-2 ids;
* **modern**: rotary positions, RMSNorm, ReLU², QK-norm, an untied head and Muon, on a
  tokenizer of 4,096 ids learned from the training stories (notebook 09).

Each gets as many steps as fit in ``--seconds`` by its own measured step time, with its whole
schedule (warmup, cosine to a tenth) fitted to them, and is evaluated every tenth of the run on
the **development split** (one training story in 25, held out; ``--development``), in bits per
byte, which compares the two tokenizers. TinyStories' validation stories are read once, at the
end, to score each final model. The last line is the ratio of the seconds each needs to reach
the ``cpu`` preset's final development bits per byte. Everything printed also goes to
``--results`` (curves, final figures, and a story from each for the same prompts).

    python benchmarks/time_to_quality.py --source ../shared/data/tinystories-sample --seconds 900

Both train in fp32 whatever the CPU offers: on a CPU with native bf16 (AVX512-BF16 or AMX) the
presets would choose bf16 by themselves and train further in the same seconds; ``--dtype
bfloat16`` measures that instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
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
from slm_helpers.speed import TrainingStep
from slm_helpers.train import train

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ("Once upon a time, there was a little girl named Lily.", "Tom and his dog went to the park.",
           "The sun was hot, so")


def seconds_per_step(preset, data: TokenDataset, dtype: str, steps: int = 8) -> float:
    step = TrainingStep(preset.model.with_tokenizer(data.tokenizer), replace(preset.train, device="cpu", dtype=dtype),
                        data)
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def run(preset, data: TokenDataset, seconds: float, validation: list[str], dtype: str = "float32") -> dict:
    """Train ``preset``'s model on ``data`` for about ``seconds``: its development curve
    (seconds since the start, bits per byte), then its final model scored on ``validation``."""
    per_step = seconds_per_step(preset, data, dtype)
    steps = max(10, int(seconds * 0.95 / per_step))  # evaluation takes the other ~5%
    config = replace(preset.train, max_steps=steps, warmup_steps=max(1, steps // 20),
                     eval_interval=max(1, steps // 10), device="cpu", dtype=dtype)
    print(f"{preset.name} ({dtype}): {per_step:.3f} s a step here, so {steps:,} steps in {seconds:.0f} s", flush=True)
    times: list[float] = []
    start = time.perf_counter()

    def log(line: str) -> None:
        if line.startswith("step "):
            times.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as out:
        torch.manual_seed(0)
        history = train(model_config=preset.model.with_tokenizer(data.tokenizer), train_config=config,
                        data_dir=data, out_dir=out, progress=False, log=log).history
        model, tokenizer = load_model(Path(out) / "best_model_params.pt")
    points = [(round(t, 1), round(r["val_bpb"], 4)) for t, r in zip(times, history)]
    for t, bpb in points:
        print(f"  {t:7.0f} s  {bpb:.3f} bits per byte (development)", flush=True)
    held_out = stories_bits_per_byte(model, tokenizer, validation)
    print(f"  TinyStories' validation stories, once: {held_out:.3f} bits per byte", flush=True)
    stories = {}
    for prompt in PROMPTS:
        stories[prompt] = write_story(model, tokenizer, prompt, max_new_tokens=150, seed=0, log=lambda line: None)
    return dict(preset=preset.name, model=asdict(model.config), train=asdict(config), seconds_per_step=per_step,
                steps=steps, tokens=steps * config.tokens_per_step(preset.model.block_size),
                parameters=model.num_params(), development_curve=points, development_bpb=points[-1][1],
                validation_bpb=round(held_out, 4), stories=stories)


def seconds_to_reach(points: list[tuple], target: float) -> float | None:
    """When a curve first reaches ``target`` (linear between evaluations), or None."""
    for (t0, b0), (t1, b1) in zip(points, points[1:]):
        if b1 <= target:
            return t0 + (t1 - t0) * (b0 - target) / (b0 - b1) if b0 > target else t0
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="real stories: a folder of TinyStories files")
    parser.add_argument("--seconds", type=float, default=900.0, help="wall-clock seconds of training for each")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: autocast, for a CPU with native bf16 (elsewhere ~30x slower)")
    parser.add_argument("--results", default=None,
                        help="default: notebooks/results/modern-preset-time-to-quality.json (-bf16.json with bfloat16)")
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
    runs = {}
    for name in ("cpu", "modern"):
        preset = get_preset(name)
        data = development_data(preset)
        info = data.info
        if name == "cpu":
            print(f"{info.splits['train'].stories:,} training stories, {info.splits['validation'].stories:,} held out "
                  f"for development, {len(validation):,} validation stories; {args.dtype} on the CPU "
                  f"({torch.get_num_threads()} threads; native bf16: {cpu_has_native_bf16()})", flush=True)
        runs[name] = run(preset, data, args.seconds, validation, args.dtype)
    target = runs["cpu"]["development_bpb"]
    cpu_time, modern_time = runs["cpu"]["development_curve"][-1][0], seconds_to_reach(
        runs["modern"]["development_curve"], target)
    print(f"after {args.seconds:.0f} s (development): cpu {target:.3f} bits per byte, modern "
          f"{runs['modern']['development_bpb']:.3f}; validation, once: cpu {runs['cpu']['validation_bpb']:.3f}, "
          f"modern {runs['modern']['validation_bpb']:.3f}")
    ratio = None if modern_time is None else cpu_time / modern_time
    Path(args.results).write_text(json.dumps(dict(
        command=f"python benchmarks/time_to_quality.py --source {args.source} --seconds {args.seconds:g}"
                + (" --dtype bfloat16" if args.dtype == "bfloat16" else ""),
        machine=f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        seconds=args.seconds, runs=runs, seconds_to_cpu_final={"cpu": cpu_time, "modern": modern_time},
        ratio=ratio), indent=1, ensure_ascii=False) + "\n")
    if modern_time is None:
        print(f"the modern preset never reached {target:.3f} bits per byte")
    else:
        print(f"seconds to reach the cpu preset's final {target:.3f} bits per byte: cpu {cpu_time:.0f} s, modern "
              f"{modern_time:.0f} s: {ratio:.1f}x less time")


if __name__ == "__main__":
    main()
