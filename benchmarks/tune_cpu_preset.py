"""Tune the ``cpu`` preset: which model, batch and learning rate reach the lowest validation
bits per byte in a fixed time on a 2-core CPU in fp32?

Two phases, so that the losses do not depend on how busy the machine is:

* ``--phase time`` (on an idle machine) measures each candidate's seconds per optimizer step
  and per evaluation, with the real training step (``slm_helpers.speed.TrainingStep``), and
  writes them to ``--timings``;
* ``--phase train`` gives each candidate as many steps as fit in ``--budget`` seconds (its
  evaluations included) by those timings, trains it with ``slm_helpers.train.train`` (the
  whole schedule: warmup, cosine to a tenth), and measures its validation loss on every
  token of the validation split. Its numbers depend only on the steps, not on the load.

A row of the table: the candidate's settings, its parameters, its seconds per step, the
steps and tokens that fit, the training seconds they make, and the validation loss in nats
per token and bits per byte. ``--only`` runs some candidates; ``--table`` prints the table of
what ``--results`` holds.

    python benchmarks/tune_cpu_preset.py --data data/ts-sample-8192 --phase time
    python benchmarks/tune_cpu_preset.py --data data/ts-sample-8192 --phase train --budget 900
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from slm_helpers.data import TokenDataset
from slm_helpers.evaluate import bits_per_byte, split_loss
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig
from slm_helpers.speed import fitted, projected_seconds, step_and_evaluation_seconds, steps_that_fit
from slm_helpers.train import train

EVALUATIONS = 10  # evaluations in a run (besides the one at step 0)
EVAL_BATCHES = 10


def candidate(name: str, n_layer: int, n_embd: int, n_head: int, block: int, batch: int, lr: float,
              accum: int = 1) -> dict:
    return dict(name=name, model=dict(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block, dropout=0.0),
                train=dict(batch_size=batch, grad_accum_steps=accum, learning_rate=lr, min_lr=lr / 10))


CANDIDATES = [
    candidate("4x128 b16x128 lr2e-3", 4, 128, 4, 128, 16, 2e-3),  # the old cpu preset's model and batch
    candidate("4x128 b32x128 lr3e-3", 4, 128, 4, 128, 32, 3e-3),
    candidate("4x128 b32x128 lr6e-3", 4, 128, 4, 128, 32, 6e-3),
    candidate("6x128 b32x128 lr3e-3", 6, 128, 4, 128, 32, 3e-3),
    candidate("4x192 b32x128 lr3e-3", 4, 192, 6, 128, 32, 3e-3),
    candidate("6x192 b32x128 lr2e-3", 6, 192, 6, 128, 32, 2e-3),
    candidate("4x256 b32x128 lr2e-3", 4, 256, 8, 128, 32, 2e-3),
    candidate("2x256 b32x128 lr3e-3", 2, 256, 8, 128, 32, 3e-3),
    candidate("4x128 b16x256 lr3e-3", 4, 128, 4, 256, 16, 3e-3),
    candidate("4x192 b16x256 lr3e-3", 4, 192, 6, 256, 16, 3e-3),
]


def configs(c: dict, data: TokenDataset, steps: int = 1000) -> tuple[GPTConfig, TrainConfig]:
    model = GPTConfig(**c["model"], vocab_size=data.vocab_size, tokenizer=data.tokenizer.name)
    chosen = TrainConfig(**{"weight_decay": 0.1, **c["train"]})  # weight decay 0.1 unless the candidate sets its own
    return model, fitted(chosen, steps, EVALUATIONS, eval_batches=EVAL_BATCHES, device="cpu", dtype="float32")


def time_candidates(candidates: list[tuple[dict, TokenDataset]]) -> dict[str, dict]:
    """Each candidate's seconds per step and per evaluation, all timed in turn (alternately, so the
    machine's pace falls on all alike): name -> timing."""
    return step_and_evaluation_seconds({c["name"]: (*configs(c, data), data) for c, data in candidates})


def train_candidate(c: dict, data: TokenDataset, timing: dict, budget: float) -> dict:
    steps = steps_that_fit(budget, timing, EVALUATIONS)
    model_config, train_config = configs(c, data, steps)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(model_config=model_config, train_config=train_config, data_dir=data, out_dir=out,
                       progress=False, log=lambda *a: None)
        elapsed = time.perf_counter() - start
        model = GPT(model_config)
        model.load_state_dict(torch.load(Path(out) / "best_model_params.pt", weights_only=True)["model"])
    nats = split_loss(model.eval(), data, "validation", model_config.block_size)
    tokens = steps * train_config.tokens_per_step(model_config.block_size)
    return dict(steps=steps, tokens=tokens, projected_seconds=projected_seconds(steps, timing, EVALUATIONS),
                seconds_here=elapsed, params=GPT(model_config).num_params(), val_nats=nats,
                val_bpb=bits_per_byte(nats, data.bytes_per_token("validation")),
                history_val=[round(r["val_loss"], 4) for r in result.history])


def print_table(results: dict, rows: list[dict] | None = None) -> None:
    """The trained rows of ``results``, best first (or ``rows``, in their order)."""
    rows = [r for r in rows or sorted(results.values(), key=lambda r: r.get("val_bpb", math.inf)) if "val_bpb" in r]
    width = max([9] + [len(r["name"]) for r in rows])
    print(f"{'candidate':<{width}} {'params':>9} {'s/step':>7} {'steps':>6} {'tokens':>8} {'seconds':>7} "
          f"{'val nats':>8} {'val bpb':>7}")
    for r in rows:
        print(f"{r['name']:<{width}} {r['params']:>9,} {r['seconds_per_step']:>7.3f} {r['steps']:>6,} "
              f"{r['tokens'] / 1e6:>7.2f}M {r['projected_seconds']:>7.0f} {r['val_nats']:>8.3f} {r['val_bpb']:>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a prepared dataset of real stories")
    parser.add_argument("--phase", choices=("time", "train"), default=None)
    parser.add_argument("--budget", type=float, default=900.0, help="seconds of training (evaluations included)")
    parser.add_argument("--results", default="benchmarks/results/cpu-preset-tuning.json")
    parser.add_argument("--only", nargs="*", default=None, help="names of candidates to run")
    parser.add_argument("--table", action="store_true", help="print the table of the results so far")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = TokenDataset.open(args.data)
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.is_file() else {}
    chosen = [c for c in CANDIDATES if args.only is None or c["name"] in args.only]
    timings = time_candidates([(c, data) for c in chosen]) if args.phase == "time" else {}
    for c in chosen if args.phase else []:
        row = results.setdefault(c["name"], dict(name=c["name"], settings=c))
        if args.phase == "time":
            row.update(timings[c["name"]])
            print(f"{c['name']:<24} {row['seconds_per_step']:.3f} s/step, {row['seconds_per_evaluation']:.2f} s/eval",
                  flush=True)
        elif "seconds_per_step" in row:
            row.update(train_candidate(c, data, row, args.budget), budget=args.budget, data=str(args.data))
            print(f"{c['name']:<24} {row['steps']:,} steps -> val {row['val_nats']:.3f} nats, {row['val_bpb']:.3f} bpb",
                  flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
    if args.table or not args.phase:
        print_table(results)


if __name__ == "__main__":
    main()
