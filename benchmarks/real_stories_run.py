"""The ``cpu`` preset on real TinyStories: the run the notebooks show.

Runs, as a learner would type them, the commands that prepare real stories with the preset's
vocabulary, train the preset on them and write stories from three prompts at two
temperatures; then measures the validation loss on every token of the validation split and
the yardsticks of the same data (notebook 05). Writes

* ``notebooks/results/cpu-preset-real-stories.txt``: each command and everything it printed;
* ``notebooks/results/cpu-preset-real-stories.json``: the same run for the notebooks to read
  (the plan, the history with bits per byte and samples, the stories, the yardsticks).

    python benchmarks/real_stories_run.py --source ../shared/data/tinystories-sample

Offline, ``../shared/data/tinystories-sample`` holds 12,898 real training stories and the
first 500 validation stories; online, ``--source tinystories`` streams the preset's own.
The run repeats stories when its tokens outnumber the source's: the output says how often.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from slm_helpers.checkpoint import load_model
from slm_helpers.data import TokenDataset
from slm_helpers.device import cpu_has_native_bf16
from slm_helpers.evaluate import bits_per_byte, split_loss, yardsticks
from slm_helpers.presets import get_preset

ROOT = Path(__file__).resolve().parent.parent
# The original run's two prompts (notebook 06 compares them), and a third.
PROMPTS = ("Once upon a time there was a pumpkin.", "A little girl went to the woods", "Lily and Tom went to the park.")
TEMPERATURES = (0.8, 1.0)
OPENING = "Once upon a time, there was a little girl named Lily. She"  # notebook 06's attention picture


def run(command: list[str], log: list[str]) -> str:
    """Run ``python -m ...`` as a learner would, echo it and its output into ``log``."""
    shown = "python -m " + shlex.join(arg.replace(f"{ROOT}/", "") for arg in command)
    print(f"$ {shown}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{shown} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    stdout, stderr = (text.replace(f"{ROOT}/", "").replace(f"{ROOT.parent}/", "../").rstrip()
                      for text in (proc.stdout, proc.stderr))
    log += [f"$ {shown}", stdout, *([stderr] if stderr else []),
            f"[{seconds:.0f} s]", ""]
    print(proc.stdout.rstrip()[-1500:], flush=True)
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="real stories: a folder of TinyStories files, or tinystories")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32 (as measured for the results), or auto")
    parser.add_argument("--name", default="cpu-preset-real-stories", help="the results files' name")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    data_dir = ROOT / "data" / f"tinystories-sample-{preset.name}-compact{preset.vocab_size or ''}"
    out_dir = ROOT / "runs" / f"{preset.name}-real-stories"
    log: list[str] = []
    vocab = ["--vocab", preset.vocab] + (["--vocab-size", str(preset.vocab_size)] if preset.vocab_size else [])
    full_dir = ROOT / "data" / "tinystories-sample-full"
    run(["slm_helpers.data", "--no-progress", "--source", args.source, "--out-dir", str(full_dir)], log)
    run(["slm_helpers.data", "--no-progress", "--source", args.source, "--out-dir", str(data_dir), *vocab], log)
    distinct = len(np.unique(np.asarray(TokenDataset.open(full_dir, log=lambda line: None).tokens("train"))))
    started = time.perf_counter()
    train_out = run(["slm_helpers.train", "--no-progress", "--preset", preset.name, "--data-dir", str(data_dir),
                     "--out-dir", str(out_dir), "--dtype", args.dtype, "--overwrite"], log)
    train_seconds = time.perf_counter() - started
    stories = []
    for prompt in PROMPTS:
        for temperature in TEMPERATURES:
            text = run(["slm_helpers.generate", "--checkpoint", str(out_dir / "best_model_params.pt"), "--prompt",
                        prompt, "--temperature", str(temperature), "--seed", "0", "--max-new-tokens", "150"], log)
            stories.append(dict(prompt=prompt, temperature=temperature, seed=0, top_k=200, text=text.strip()))

    data = TokenDataset.open(data_dir, log=lambda line: None)
    model, tokenizer = load_model(out_dir / "best_model_params.pt")
    nats = split_loss(model, data, "validation", model.config.block_size)
    opening = tokenizer.encode_ordinary(OPENING)
    weights = model.attention_weights(torch.tensor([opening]), layer=0)
    focus = dict(opening=OPENING, block=0, largest_weight_per_row=weights[:, 4:].max(-1).values.mean().item(),
                 even_spread=(1 / torch.arange(5, len(opening) + 1).float()).mean().item())
    sticks = yardsticks(data)
    history = json.loads((out_dir / "history.json").read_text())
    trained_tokens = history[-1]["tokens"]
    epochs = trained_tokens / data.info.splits["train"].tokens
    summary = [
        f"the {data.info.splits['train'].stories:,} training stories use {distinct:,} distinct GPT-2 ids",
        f"the whole validation split ({data.info.splits['validation'].tokens:,} tokens): {nats:.3f} nats per token, "
        f"{bits_per_byte(nats, data.bytes_per_token('validation')):.3f} bits per byte",
        *(f"{name}: {value['nats']:.3f} nats per token, {value['bpb']:.3f} bits per byte"
          for name, value in sticks.items()),
        f"trained on {trained_tokens:,} tokens: {epochs:.1f} times the {data.info.splits['train'].tokens:,} "
        "training tokens of the sample (online, the preset streams enough stories to see each once)",
        f"training took {train_seconds / 60:.1f} minutes on {os.cpu_count()} cores of {platform.processor() or 'a CPU'}"
        f" (native bf16: {cpu_has_native_bf16()}), torch {torch.__version__}, dtype {args.dtype}",
    ]
    log += summary
    results = ROOT / "notebooks" / "results"
    (results / f"{args.name}.txt").write_text("\n".join(log) + "\n")
    (results / f"{args.name}.json").write_text(json.dumps(dict(
        title=(f"the {preset.name} preset on real TinyStories ({data.info.splits['train'].stories:,} training "
               f"stories of a sample; {args.dtype}; {train_seconds / 60:.1f} minutes on a {os.cpu_count()}-core "
               f"CPU)"),
        commands=[line for line in log if line.startswith("$ ")],
        dataset=dict(source=args.source, stories={s: i.stories for s, i in data.info.splits.items()},
                     tokens={s: i.tokens for s, i in data.info.splits.items()},
                     bytes_per_token=data.bytes_per_token("validation"), tokenizer=data.tokenizer.name,
                     vocab_size=data.vocab_size, distinct_gpt2_ids=distinct,
                     coverage=data.tokenizer.vocabulary.coverage if data.tokenizer.vocabulary else None),
        plan=[line for line in train_out.splitlines() if line.startswith(("device:", "plan:", "vocab_size"))
              or "parameters;" in line],
        history=history, train_seconds=train_seconds, epochs=epochs,
        validation=dict(nats=nats, bpb=bits_per_byte(nats, data.bytes_per_token("validation"))),
        yardsticks=sticks, stories=stories, attention=focus,
        machine=dict(cores=os.cpu_count(), native_bf16=cpu_has_native_bf16(), torch=torch.__version__,
                     dtype=args.dtype),
    ), indent=1))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
