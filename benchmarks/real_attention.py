"""Where a model trained on real stories looks: every head's attention weights on notebook 06's
story opening, for its picture of the real model (the notebooks cannot train one in the tests).

    python benchmarks/time_to_quality.py --source ../shared/data/tinystories-sample --seconds 900
    python benchmarks/real_attention.py --checkpoint runs/time-to-quality/cpu/best_model_params.pt

Writes ``notebooks/results/cpu-preset-attention.json``: the command, what the weights file says
about the model (its data, steps and development figure), the opening's tokens, and for each
block the weights ``[head][query][key]`` (3 decimals) with notebook 06's measure of focus: the
largest weight of each row from the fifth on, averaged, against an even spread over the past.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from slm_helpers.about import open_model
from slm_helpers.errors import SlmError

ROOT = Path(__file__).resolve().parent.parent
OPENING = "Once upon a time, there was a little girl named Lily. She"  # notebook 06's


def focus(weights: torch.Tensor) -> float:
    """The largest weight of each row from the fifth on (earlier rows have few keys), averaged."""
    return weights[:, 4:].max(-1).values.mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a weights file of a run on real stories")
    parser.add_argument("--out", default=str(ROOT / "notebooks" / "results" / "cpu-preset-attention.json"))
    args = parser.parse_args()
    try:
        model, tokenizer, about = open_model(args.checkpoint)
        opening = tokenizer.encode_ordinary(OPENING)
    except SlmError as error:  # a missing or damaged file, a tokenizer it cannot build: one line
        raise SystemExit(f"error: {error}") from None
    blocks = []
    for layer in range(model.config.n_layer):
        weights = model.attention_weights(torch.tensor([opening]), layer=layer)
        blocks.append(dict(block=layer, largest_weight_per_row=round(focus(weights), 4),
                           weights=weights.numpy().round(3).tolist()))
    even = (1 / torch.arange(5, len(opening) + 1).float()).mean().item()
    facts = {k: v for k, v in asdict(about).items() if k != "source"}  # not this machine's path to the data
    result = dict(command=f"python benchmarks/real_attention.py {shlex.join(sys.argv[1:])}", model=facts,
                  opening=OPENING, tokens=[tokenizer.decode([i]) for i in opening], even_spread=round(even, 4),
                  blocks=blocks)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for b in blocks:
        print(f"block {b['block']}: largest weight per row {b['largest_weight_per_row']:.2f} (an even spread: "
              f"{even:.2f})")


if __name__ == "__main__":
    main()
