"""Stories on request with the ``cpu`` preset on real TinyStories: the run notebook 08 shows.

Starts from the weights of ``benchmarks/real_stories_run.py`` (the ``cpu`` preset trained on
real stories; run it first), makes request records from the same real stories (Words from
each story's beginning, Dialogue from its quotation marks), fine-tunes with the command a
learner types, and scores, on held-out prompts (records of validation stories):

* the floor: the base model given the prompts;
* the fine-tuned model given the same prompts;
* the ceiling: the validation stories themselves, cut where a model's story must stop.

Writes ``notebooks/results/cpu-preset-stories-on-request.{txt,json}``.

    python benchmarks/stories_on_request_run.py --source ../shared/data/tinystories-sample
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from slm_helpers.checker import answer_requests, ceiling_stories, score
from slm_helpers.checkpoint import load_model
from slm_helpers.device import cpu_has_native_bf16
from slm_helpers.instruct import prepare_requests, read_records
from slm_helpers.presets import get_preset

from real_stories_run import ROOT, run

SHOWN = 3  # prompts whose stories are printed from both models
REQUESTS = (("dog", "ball", "happy"), ("Dialogue",)), (("tree", "jump", "friend"), ())


def ratio_line(tuned: float, base: float) -> str:
    """How many times more of the asked words the fine-tuned model uses."""
    if base == 0:
        return f"words used: fine-tuned {tuned:.0%}, base model 0%"
    return f"words used: fine-tuned {tuned / base:.1f}x the base model's"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="real stories: a folder of TinyStories files")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--prompts", type=int, default=200, help="held-out prompts scored")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    base_weights = ROOT / "runs" / f"{preset.name}-real-stories" / "best_model_params.pt"
    if not base_weights.is_file():
        raise SystemExit(f"no {base_weights}: run benchmarks/real_stories_run.py --source {args.source} first")
    folder = prepare_requests(args.source, ROOT / "data" / f"requests-tinystories-sample-{preset.name}",
                              **preset.requests)
    out_dir = ROOT / "runs" / f"{preset.name}-real-stories-requests"
    log: list[str] = []
    started = time.perf_counter()
    run(["slm_helpers.train", "--no-progress", "--preset", preset.name, "--init-from", str(base_weights.relative_to(
        ROOT)), "--data-dir", str(folder.relative_to(ROOT)), "--out-dir", str(out_dir.relative_to(ROOT)), "--dtype",
         "float32", "--overwrite"], log)
    seconds = time.perf_counter() - started

    records = read_records(folder, "validation")[: args.prompts]
    base, tokenizer = load_model(base_weights)
    tuned, _ = load_model(out_dir / "best_model_params.pt")
    stories = {"base model": answer_requests(base, tokenizer, records),
               "fine-tuned": answer_requests(tuned, tokenizer, records),
               "ceiling (the real stories, cut)": ceiling_stories(tokenizer, records, base.config.block_size)}
    scores = {name: score(records, texts) for name, texts in stories.items()}
    for words, features in REQUESTS:
        run(["slm_helpers.generate", "--checkpoint", str((out_dir / "best_model_params.pt").relative_to(ROOT)),
             "--words", ",".join(words), *(["--features", ",".join(features)] if features else []), "--seed", "0"],
            log)
    summary = [f"held-out prompts: the first {len(records)} records of the validation stories",
               *(f"{name}: {s.line()}" for name, s in scores.items()),
               ratio_line(scores["fine-tuned"].words, scores["base model"].words),
               f"fine-tuning took {seconds / 60:.1f} minutes on {os.cpu_count()} cores (native bf16: "
               f"{cpu_has_native_bf16()}), torch {torch.__version__}, float32"]
    for i in range(SHOWN):
        summary += ["", records[i].prompt().strip()]
        summary += [f"[{name}] {texts[i]}" for name, texts in stories.items()]
    log += summary
    results = ROOT / "notebooks" / "results"
    (results / "cpu-preset-stories-on-request.txt").write_text("\n".join(log) + "\n")
    (results / "cpu-preset-stories-on-request.json").write_text(json.dumps(dict(
        title=f"the {preset.name} preset fine-tuned on request records of real TinyStories (a 12,898-story sample)",
        commands=[line for line in log if line.startswith("$ ")],
        history=json.loads((out_dir / "history.json").read_text()), seconds=seconds,
        scores={name: s.__dict__ for name, s in scores.items()},
        shown=[dict(prompt=records[i].prompt(), **{name: texts[i] for name, texts in stories.items()})
               for i in range(SHOWN)],
        machine=dict(cores=os.cpu_count(), native_bf16=cpu_has_native_bf16(), torch=torch.__version__,
                     processor=platform.processor()),
    ), indent=1))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
