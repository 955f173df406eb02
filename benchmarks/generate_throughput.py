"""How much does the KV cache buy, and how does our generation compare with transformers?

With the ``cpu`` preset's model sizes (random weights: speed does not depend on them),
greedy generation from a short prompt until the context is full (``block_size`` minus the
prompt's length new tokens), measured alternately in one process:

* ours with the KV cache, ours without it (target: cache >= 3x no cache);
* ``transformers.GPT2LMHeadModel.generate`` with the same weights and ``use_cache=True``
  (target: ours >= 1.0x).

``--block-size 512`` gives the model a longer context (the preset's sizes otherwise): the
longer the context, the more the cache saves (notebook 07, section 4). ``--past-context``
also times 2 x block_size tokens, past the context, where the cache stops helping (the
window slides; see notebook 06). The last line is the cache's speed-up.

    python benchmarks/generate_throughput.py [--preset cpu] [--block-size 512] [--rounds 3] [--past-context]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from slm_helpers.export import to_hf_gpt2
from slm_helpers.generate import generate_ids
from slm_helpers.model import GPT
from slm_helpers.presets import get_preset


def tokens_per_second(fn, n: int, rounds: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--block-size", type=int, default=None, help="the model's context (default: the preset's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--past-context", action="store_true", help="also generate 2 x block_size tokens")
    args = parser.parse_args()

    torch.manual_seed(0)
    preset_model = get_preset(args.preset).model
    config = replace(preset_model, dropout=0.0, block_size=args.block_size or preset_model.block_size)
    model = GPT(config).eval()
    hf = to_hf_gpt2(model)
    prompt = [7454, 2402, 257, 640]  # "Once upon a time"
    n = config.block_size - len(prompt)
    print(f"preset {args.preset!r}: {config.n_layer} layers x {config.n_embd}, block_size {config.block_size}; "
          f"{n} new tokens after a {len(prompt)}-token prompt; {torch.get_num_threads()} threads")

    def ours(cache: bool, count: int):
        return lambda: list(generate_ids(model, prompt, count, temperature=0, use_kv_cache=cache))

    def theirs():
        with torch.no_grad():
            return hf.generate(torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               use_cache=True, pad_token_id=0)

    assert ours(True, n)() == theirs()[0, len(prompt):].tolist(), "both must generate the same greedy tokens"
    results = {"cache": [], "no cache": [], "transformers": []}
    for _ in range(args.rounds):  # alternate, so that all three see the same machine load
        results["cache"].append(tokens_per_second(ours(True, n), n, 1))
        results["no cache"].append(tokens_per_second(ours(False, n), n, 1))
        results["transformers"].append(tokens_per_second(theirs, n, 1))
    best = {name: max(values) for name, values in results.items()}
    print(f"to the full context: cache {best['cache']:,.0f} tok/s, no cache {best['no cache']:,.0f} tok/s, "
          f"transformers generate {best['transformers']:,.0f} tok/s")
    print(f"ours / transformers = {best['cache'] / best['transformers']:.2f}x (target >= 1.0)")
    if args.past_context:
        far = 2 * config.block_size
        cached_far = tokens_per_second(ours(True, far), far, args.rounds)
        plain_far = tokens_per_second(ours(False, far), far, args.rounds)
        print(f"2 x block_size = {far} tokens: cache {cached_far:,.0f} tok/s, no cache {plain_far:,.0f} tok/s "
              f"({cached_far / plain_far:.1f}x; past the context every step recomputes the window)")
    print(f"cache/no-cache {best['cache'] / best['no cache']:.2f}x (target >= 3, block_size {config.block_size})")


if __name__ == "__main__":
    main()
