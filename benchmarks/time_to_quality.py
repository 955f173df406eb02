"""Time to quality: the ``cpu`` preset against the nanoGPT-style defaults it replaced.

Both train on the same real stories for the same seconds of wall-clock time on this machine:

* **old**: the previous ``cpu`` preset, nanoGPT's habits: GPT-2's full vocabulary, 4 layers x
  128, 16 x 128 tokens a step, peak learning rate 2e-3;
* **new**: the ``cpu`` preset (its compact vocabulary, its model and settings).

Each gets as many steps as fit in ``--seconds`` by its own measured step time, with its whole
schedule (warmup, cosine to a tenth) fitted to them, and is evaluated every tenth of the run.
The validation loss is reported in bits per byte, which compares the two vocabularies. The
last line is the ratio of the seconds each needs to reach the old one's final bits per byte.

    python benchmarks/time_to_quality.py --source ../shared/data/tinystories-sample --seconds 900
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from slm_helpers.data import TokenDataset, prepare_dataset
from slm_helpers.device import cpu_has_native_bf16
from slm_helpers.model import GPTConfig
from slm_helpers.optim import TrainConfig
from slm_helpers.presets import get_preset
from slm_helpers.speed import TrainingStep
from slm_helpers.train import train

ROOT = Path(__file__).resolve().parent.parent
OLD_MODEL = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
OLD_TRAIN = TrainConfig(batch_size=16, grad_accum_steps=1, max_steps=700, warmup_steps=70, learning_rate=2e-3,
                        min_lr=2e-4, eval_interval=50, eval_batches=10, weight_decay=0.1, device="cpu",
                        dtype="float32")


def seconds_per_step(model: GPTConfig, config: TrainConfig, data: TokenDataset, steps: int = 6) -> float:
    step = TrainingStep(model, config, data)
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def curve(name: str, model: GPTConfig, config: TrainConfig, data: TokenDataset, seconds: float) -> list[tuple]:
    """(seconds since the start, validation bits per byte) at each evaluation of a run fitted
    to ``seconds``."""
    per_step = seconds_per_step(model, config, data)
    steps = max(10, int(seconds * 0.95 / per_step))  # evaluation takes the other ~5%
    config = replace(config, max_steps=steps, warmup_steps=max(1, steps // 10), eval_interval=max(1, steps // 10))
    print(f"{name}: {per_step:.3f} s a step here, so {steps:,} steps in {seconds:.0f} s", flush=True)
    times: list[float] = []
    start = time.perf_counter()

    def log(line: str) -> None:
        if line.startswith("step "):
            times.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as out:
        history = train(model_config=model, train_config=config, data_dir=data, out_dir=out, progress=False,
                        log=log).history
    points = [(t, r["val_bpb"]) for t, r in zip(times, history)]
    for t, bpb in points:
        print(f"  {t:7.0f} s  {bpb:.3f} bits per byte", flush=True)
    return points


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
    args = parser.parse_args()
    new = get_preset("cpu")
    quiet = dict(progress=False, log=lambda line: None)
    full = TokenDataset.open(prepare_dataset(args.source, ROOT / "data" / "tinystories-sample-full", **quiet).path)
    compact_dir = ROOT / "data" / f"tinystories-sample-cpu-compact{new.vocab_size or ''}"
    compact = TokenDataset.open(prepare_dataset(args.source, compact_dir, vocab=new.vocab, vocab_size=new.vocab_size,
                                                **quiet).path)
    print(f"{full.info.splits['train'].tokens:,} training tokens of real stories; fp32 on the CPU; native bf16: "
          f"{cpu_has_native_bf16()}")
    old_points = curve("old (full vocabulary, 4 x 128)", OLD_MODEL.with_tokenizer(full.tokenizer), OLD_TRAIN, full,
                       args.seconds)
    new_points = curve(f"new (the cpu preset: {new.model.n_layer} x {new.model.n_embd}, compact vocabulary)",
                       new.model.with_tokenizer(compact.tokenizer), replace(new.train, device="cpu", dtype="float32"),
                       compact, args.seconds)
    target = old_points[-1][1]
    old_time, new_time = old_points[-1][0], seconds_to_reach(new_points, target)
    print(f"after {args.seconds:.0f} s: old {target:.3f} bits per byte, new {new_points[-1][1]:.3f}")
    if new_time is None:
        print(f"the new preset never reached {target:.3f} bits per byte")
    else:
        print(f"seconds to reach the old preset's final {target:.3f} bits per byte: old {old_time:.0f} s, new "
              f"{new_time:.0f} s: {old_time / new_time:.1f}x less time")


if __name__ == "__main__":
    main()
