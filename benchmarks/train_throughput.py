"""Is the hand-written training loop's bookkeeping cheap?

Training tokens/s of the ``cpu`` preset (by default) for ``slm_helpers.train.train`` beside
a plain loop with the same model, batch and optimizer (no accumulation bookkeeping, no
schedule, no clipping, no evaluation), measured alternately in one process. The helper's
time per step is taken as the difference between a short and a long run, so its start-up
and its two evaluations (at step 0 and at the end) cancel out. Target: overhead under 5%.

Where a CUDA GPU is at hand, ``--gpu`` also times the ``gpu`` preset for a few steps and
prints its tokens/s, the model FLOPs utilisation (MFU) and the time the whole original run
(20,000 optimizer steps) would take.

    python benchmarks/train_throughput.py [--preset cpu] [--steps 5 25] [--rounds 2] [--gpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import torch

from slm_helpers.data import preset_dataset
from slm_helpers.device import choose_device, keep_large_buffers_on_the_heap
from slm_helpers.model import GPT, flops_per_token
from slm_helpers.presets import get_preset
from slm_helpers.train import train


def helper_seconds(preset, steps: int) -> float:
    config = replace(preset.train, max_steps=steps, warmup_steps=1, eval_interval=steps, eval_batches=1)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(preset, train_config=config, out_dir=out, progress=False, log=lambda *a, **k: None)
        return time.perf_counter() - start


def plain_seconds_per_step(preset, data, steps: int, device) -> float:
    torch.manual_seed(0)
    model = GPT(preset.model).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.train.learning_rate)
    generator = torch.Generator().manual_seed(0)
    micro_batches = preset.train.grad_accum_steps

    def step():
        for _ in range(micro_batches):
            x, y = data.batch("train", preset.train.batch_size, preset.model.block_size, generator, device)
            _, loss = model(x, y)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, nargs=2, default=(5, 25), help="short and long helper runs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="also time the gpu preset (needs CUDA and TinyStories)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    device, reason = choose_device(preset.train.device)
    if device.type == "cpu":
        keep_large_buffers_on_the_heap()  # what train() does on a CPU; the plain loop gets it too
    data = preset_dataset(preset, progress=False)
    tokens_per_step = preset.train.tokens_per_step(preset.model.block_size)
    print(f"preset {preset.name!r} on {device} ({reason}), {torch.get_num_threads()} threads, "
          f"{tokens_per_step:,} tokens per step")

    short, long = args.steps
    helper, plain = [], []
    for _ in range(args.rounds):
        helper.append((helper_seconds(preset, long) - helper_seconds(preset, short)) / (long - short))
        plain.append(plain_seconds_per_step(preset, data, long - short, device))
    helper_tps, plain_tps = tokens_per_step / min(helper), tokens_per_step / min(plain)
    print(f"helper loop: {helper_tps:,.0f} tokens/s   plain loop: {plain_tps:,.0f} tokens/s   "
          f"overhead {plain_tps / helper_tps - 1:+.1%}  (target < 5%)")

    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu needs CUDA")
        gpu = get_preset("gpu")
        steps = 3
        config = replace(gpu.train, max_steps=steps + 1, warmup_steps=1, eval_interval=10**9, eval_batches=1)
        with tempfile.TemporaryDirectory() as out:
            result = train(gpu, train_config=config, out_dir=out, progress=False)
        flops = sum(flops_per_token(gpu.model).values()) * result.tokens_per_second
        total_tokens = gpu.train.tokens_per_step(gpu.model.block_size) * gpu.train.max_steps
        print(f"gpu preset: {result.tokens_per_second:,.0f} tokens/s, {flops / 1e12:.1f} TFLOP/s"
              + (f", MFU {flops / (args.peak_tflops * 1e12):.1%}" if args.peak_tflops else "")
              + f"; the whole run ({total_tokens / 1e9:.2f}B tokens) would take "
              f"{total_tokens / result.tokens_per_second / 3600:.1f} h")


if __name__ == "__main__":
    main()
