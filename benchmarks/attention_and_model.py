"""Speed of the model: fused vs manual attention, and our GPT vs transformers' GPT-2.

Measured side by side in one process, alternating the contenders round by round so both
see the same machine load, with the same sizes, batch and thread count:

1. forward+backward tokens/s of ``CausalSelfAttention`` with ``flash=True`` (fused
   ``scaled_dot_product_attention``) vs ``flash=False`` (manual masked softmax);
2. tokens/s of a full training step (forward, backward, AdamW step) of ``GPT`` vs
   ``transformers.GPT2LMHeadModel`` of the same sizes (exact GELU, SDPA attention).

Targets: fused >= manual, and GPT >= 1.0x the transformers model.

    python benchmarks/attention_and_model.py [--rounds 5] [--preset cpu] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import time

import torch

from slm_helpers.export import to_hf_gpt2
from slm_helpers.model import GPT, CausalSelfAttention, GPTConfig
from slm_helpers.presets import get_preset


def attention_step(layer: CausalSelfAttention, x: torch.Tensor) -> None:
    layer(x).sum().backward()


def make_training_step(model, hf: bool, batch: tuple[torch.Tensor, torch.Tensor]):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = batch

    def step() -> None:
        loss = model(input_ids=x, labels=y).loss if hf else model(x, y)[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def race(contenders: dict, tokens_per_call: int, rounds: int, calls: int) -> dict[str, float]:
    """Median tokens/s of each contender, measured in alternating rounds."""
    for fn in contenders.values():  # warm-up
        fn()
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append(tokens_per_call * calls / (time.perf_counter() - start))
    return {name: sorted(s)[len(s) // 2] for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="model sizes to use (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3, help="steps per contender per round")
    args = parser.parse_args()

    config = GPTConfig(**{**get_preset(args.preset).model.__dict__, "dropout": 0.0})
    B, T = args.batch_size, config.block_size
    print(f"sizes: preset {args.preset!r} {config.n_layer} layers x {config.n_embd}, {config.n_head} heads, "
          f"batch {B} x {T} tokens, {torch.get_num_threads()} threads, torch {torch.__version__}")

    torch.manual_seed(0)
    x = torch.randn(B, T, config.n_embd, requires_grad=True)
    fused = CausalSelfAttention(GPTConfig(**{**config.__dict__, "flash": True}))
    manual = CausalSelfAttention(GPTConfig(**{**config.__dict__, "flash": False}))
    manual.load_state_dict(fused.state_dict())
    attn = race({"fused": lambda: attention_step(fused, x), "manual": lambda: attention_step(manual, x)},
                B * T, args.rounds, args.calls * 4)
    print(f"attention fwd+bwd: fused {attn['fused']:,.0f} tok/s, manual {attn['manual']:,.0f} tok/s "
          f"-> fused/manual = {attn['fused'] / attn['manual']:.2f}  (target >= 1.0)")

    idx = torch.randint(0, config.vocab_size, (B, T))
    ours = GPT(config).train()
    theirs = to_hf_gpt2(ours).train()  # same sizes and weights, SDPA attention
    steps = race({"GPT": make_training_step(ours, False, (idx, idx)),
                  "GPT2LMHeadModel": make_training_step(theirs, True, (idx, idx))},
                 B * T, args.rounds, args.calls)
    print(f"training step: GPT {steps['GPT']:,.0f} tok/s, "
          f"transformers GPT2LMHeadModel {steps['GPT2LMHeadModel']:,.0f} tok/s "
          f"-> GPT/transformers = {steps['GPT'] / steps['GPT2LMHeadModel']:.2f}  (target >= 1.0)")


if __name__ == "__main__":
    main()
