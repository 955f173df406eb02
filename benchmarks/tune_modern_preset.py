"""Tune the ``modern`` preset, piece by piece, on a development split (never on validation).

Every row trains for the same ``--budget`` seconds of this machine (2 cores, fp32), by the
method of ``tune_cpu_preset.py``: ``--phase time`` measures each candidate's seconds per step
and per evaluation on an idle machine; ``--phase train`` gives it the steps that fit and trains
it (its numbers then depend on the steps alone, not on how busy the machine is). Each row is
scored in bits per byte on every token of its dataset's validation split, which for these
datasets is the **development split**: one training story in 25, held out
(``python -m slm_helpers.data --development``); TinyStories' validation stories are never read.

The rows are an ablation: the ``cpu`` preset's model and settings, then the modern pieces added
one at a time (a tokenizer trained on the stories, rotary positions, RMSNorm and ReLU², QK-norm,
an untied head, Muon), then sizes and learning rates for the whole recipe. The datasets
(``--data-root``, prepared once with the commands below) are:

    python -m slm_helpers.data --source ../shared/data/tinystories-sample --development \\
        --vocab compact --vocab-size 8192 --out-dir data/dev-compact8192
    python -m slm_helpers.data --source ../shared/data/tinystories-sample --development \\
        --vocab trained --vocab-size 4096 --out-dir data/dev-bpe4096       # also 2048, 8192

    python benchmarks/tune_modern_preset.py --phase time
    python benchmarks/tune_modern_preset.py --phase train --budget 300
    python benchmarks/tune_modern_preset.py --table

The rows of a phase are timed in turn (alternately), so the machine's pace falls on all alike.
Rows whose steps do the same work as ``+ muon`` (other rates or schedules) take its recorded
timing (``--phase time --same-as "+ muon" --only ...``). Other rows added on a later day are
timed beside one already trained and their timings scaled to its
recorded one (``--phase time --relative-to "+ muon" --only ...``), so that every row's steps
come from the same day's pace. (In the results file, two such rows that do the same work per
step as ``+ muon``, without QK-norm and with another Muon rate, took its timing outright.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tune_cpu_preset import print_table, time_candidates, train_candidate

from slm_helpers.data import TokenDataset

RESULTS = "notebooks/results/modern-preset-tuning.json"
CPU = dict(n_layer=4, n_embd=128, n_head=4, block_size=128, dropout=0.0)  # the cpu preset's model
ROTARY = dict(position="rotary")
NORM_MLP = dict(norm="rmsnorm", mlp="relu2")
QK = dict(qk_norm=True)
UNTIED = dict(tie_head=False)
MUON = dict(optimizer="muon")


def row(name: str, data: str, model: dict, lr: float = 6e-3, batch: int = 32, ablation: bool = False,
        **train: float | str) -> dict:
    return dict(name=name, data=data, ablation=ablation, model={**CPU, **model},
                train={**dict(batch_size=batch, grad_accum_steps=1, learning_rate=lr, min_lr=lr / 10), **train})


MODERN = {**ROTARY, **NORM_MLP, **QK, **UNTIED}
# nanochat's AdamW half: the embedding and the untied head at rates of their own, no weight decay, beta1 0.8
RATES = dict(embedding_lr=0.3, head_lr=0.008, weight_decay=0.0, betas=(0.8, 0.95))
CANDIDATES = [
    # the ablation: one piece at a time, in this order
    row("cpu preset (compact 8192)", "dev-compact8192", {}, ablation=True),
    row("+ trained tokenizer 4096", "dev-bpe4096", {}, ablation=True),
    row("+ rotary", "dev-bpe4096", ROTARY, ablation=True),
    row("+ rmsnorm, relu2", "dev-bpe4096", {**ROTARY, **NORM_MLP}, ablation=True),
    row("+ qk-norm", "dev-bpe4096", {**ROTARY, **NORM_MLP, **QK}, ablation=True),
    row("+ untied head", "dev-bpe4096", MODERN, ablation=True),
    row("+ muon", "dev-bpe4096", MODERN, ablation=True, **MUON),
    # the tokenizer's size, with every piece
    row("all, tokenizer 2048", "dev-bpe2048", MODERN, **MUON),
    row("all, tokenizer 8192", "dev-bpe8192", MODERN, **MUON),
    # QK-norm cost a little in the ablation: the whole recipe without it
    row("all, no qk-norm", "dev-bpe4096", {**MODERN, "qk_norm": False}, **MUON),
    # learning rates, batch and sizes for the whole recipe
    row("all, batch 16", "dev-bpe4096", MODERN, batch=16, **MUON),
    row("all, muon_lr 0.04", "dev-bpe4096", MODERN, muon_lr=0.04, **MUON),
    row("all, lr 3e-3", "dev-bpe4096", MODERN, lr=3e-3, **MUON),
    row("all, 6x192", "dev-bpe4096", {**MODERN, "n_layer": 6, "n_embd": 192, "n_head": 6}, **MUON),
    row("all, 4x192", "dev-bpe4096", {**MODERN, "n_embd": 192, "n_head": 6}, **MUON),
    row("all, 6x128", "dev-bpe4096", {**MODERN, "n_layer": 6}, **MUON),
    # the AdamW half's rates, then the schedule: the modern preset is the last row
    row("all, nanochat's rates", "dev-bpe4096", MODERN, **MUON, **RATES),
    row("all, rates, wsd 40%", "dev-bpe4096", MODERN, **MUON, **RATES, schedule="wsd", decay_fraction=0.4, min_lr=0.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data", help="the folder holding the dev-* datasets")
    parser.add_argument("--phase", choices=("time", "train", "describe"), default=None,
                        help="describe: record each row's data (vocabulary, bytes per token) without training")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training (evaluations included)")
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--only", nargs="*", default=None, help="names of candidates to run")
    parser.add_argument("--relative-to", default=None, metavar="NAME",
                        help="with --phase time: time the row NAME beside the others and scale their timings by "
                             "NAME's recorded one over NAME's now (a machine slower or busier than on NAME's day)")
    parser.add_argument("--same-as", default=None, metavar="NAME",
                        help="with --phase time: copy the recorded timing of the row NAME, whose steps do the same "
                             "work (the same model and batch, other rates or schedule)")
    parser.add_argument("--table", action="store_true", help="print the table of the results so far")
    args = parser.parse_args()
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.is_file() else {}
    chosen = [c for c in CANDIDATES if args.only is None or c["name"] in args.only]
    reference = None
    if args.relative_to is not None and args.phase == "time":
        saved = results.get(args.relative_to, {})
        if "seconds_per_step" not in saved:
            raise SystemExit(f"error: --relative-to needs a row timed before (its timing is the scale), not "
                             f"{args.relative_to!r}")
        reference = next(c for c in CANDIDATES if c["name"] == args.relative_to)
        chosen = [c for c in chosen if c is not reference]  # its recorded timing stays
    timed = chosen + [reference] * (reference is not None)
    if args.same_as is not None and args.phase == "time":
        saved = results.get(args.same_as, {})
        if "seconds_per_step" not in saved:
            raise SystemExit(f"error: --same-as needs a row timed before, not {args.same_as!r}")
        copied = {key: saved[key] for key in ("seconds_per_step", "seconds_per_evaluation")}
        timings = {c["name"]: {**copied, "timing": f"the same work a step as {args.same_as!r}: its timing"}
                   for c in chosen}
    else:
        timings = time_candidates([(c, TokenDataset.open(Path(args.data_root) / c["data"])) for c in timed]) \
            if args.phase == "time" else {}
    for c in chosen if args.phase else []:
        data = TokenDataset.open(Path(args.data_root) / c["data"])
        if not data.info.source_options.get("development"):
            raise SystemExit(f"error: {data.path} is not a development split (prepare it with --development)")
        row_ = results.setdefault(c["name"], {})
        row_.update(name=c["name"], settings=c, ablation=c["ablation"], data_bytes_per_token=round(
            data.bytes_per_token("validation"), 4), n_vocab=data.vocab_size)
        if args.phase == "describe":
            print(f"{c['name']:<28} {data.vocab_size:>5,} ids, {row_['data_bytes_per_token']:.3f} bytes per token")
        elif args.phase == "time":
            row_.update(timings[c["name"]])
            if reference is not None:  # scaled by the reference's recorded timing over its timing now
                now, recorded = timings[reference["name"]], results[reference["name"]]
                row_.update({key: row_[key] * recorded[key] / now[key] for key in now},
                            timing=f"timed beside {args.relative_to!r} and scaled to its recorded timing")
            print(f"{c['name']:<28} {row_['seconds_per_step']:.3f} s/step, {row_['seconds_per_evaluation']:.2f} "
                  "s/eval", flush=True)
        elif "seconds_per_step" in row_:
            torch.manual_seed(0)
            row_.update(train_candidate(c, data, row_, args.budget), budget=args.budget, data=str(data.path),
                        split="development")
            print(f"{c['name']:<28} {row_['steps']:,} steps -> dev {row_['val_nats']:.3f} nats, "
                  f"{row_['val_bpb']:.3f} bpb", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
    if args.table or not args.phase:
        print("(val: the development split)")
        print_table(results, [results[c["name"]] for c in CANDIDATES if c["name"] in results])


if __name__ == "__main__":
    main()
