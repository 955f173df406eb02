"""How fast is dataset preparation, and how much memory does it take?

Writes a large synthetic corpus (>= 100 MB of text, stories separated by <|endoftext|>) to a
.txt file, then measures side by side in one run:

* raw: tiktoken's ``encode_ordinary`` on the same stories in this process, one core;
* prepare: ``prepare_dataset`` on that file with all cores (reading, tokenizing, writing).

It prints MB/s and tokens/s of both, the ratio of prepare to raw x cores (target >= 0.8) and
the peak resident memory of the preparing process and its workers (target < 1.5 GB, whatever
the corpus size).

    python benchmarks/prepare_throughput.py [--megabytes 100] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slm_helpers.stories import make_story
from slm_helpers.tokenizer import get_tokenizer


def write_corpus(path: Path, megabytes: float) -> tuple[int, int]:
    """Write stories until the file holds ``megabytes`` of text; return (bytes, stories)."""
    written = stories = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < megabytes * 1e6:
            text = make_story(seed=123, index=stories) + "<|endoftext|>\n"
            f.write(text)
            written += len(text.encode("utf-8"))
            stories += 1
    return written, stories


def raw_encode(path: Path, sample_mb: float) -> tuple[float, int, float]:
    """encode_ordinary on the first ``sample_mb`` of stories, one core: (MB, tokens, seconds)."""
    enc = get_tokenizer()
    stories, size = [], 0
    with open(path, encoding="utf-8") as f:
        for story in f.read(int(sample_mb * 1e6)).split("<|endoftext|>")[:-1]:
            stories.append(story.strip())
            size += len(story.encode("utf-8"))
    start = time.perf_counter()
    tokens = sum(len(enc.encode_ordinary(s)) + 1 for s in stories)
    return size / 1e6, tokens, time.perf_counter() - start


PREPARE_AND_REPORT = """
import json, resource, sys, time
from slm_helpers.data import prepare_dataset
start = time.perf_counter()
info = prepare_dataset(sys.argv[1], sys.argv[2], num_workers=int(sys.argv[3]), progress=False)
seconds = time.perf_counter() - start
peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peak_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
tokens = sum(s.tokens for s in info.splits.values())
print(json.dumps(dict(seconds=seconds, tokens=tokens, peak_self_mb=peak_self, peak_worker_mb=peak_workers)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=100.0, help="size of the text corpus")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="tokenizer processes for prepare")
    parser.add_argument("--raw-sample-mb", type=float, default=20.0,
                        help="text encoded by the raw single-core baseline")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "stories.txt"
        size, n_stories = write_corpus(corpus, args.megabytes)
        print(f"corpus: {size / 1e6:.1f} MB of text, {n_stories:,} stories; cores used: {args.workers}")

        # Alternate raw and prepare so both see the same machine load.
        raw_mb, raw_tokens, raw_s = raw_encode(corpus, args.raw_sample_mb)
        out = subprocess.run(
            [sys.executable, "-c", PREPARE_AND_REPORT, str(corpus), str(Path(tmp) / "out"), str(args.workers)],
            capture_output=True, text=True, check=True,
        )
        raw_mb2, raw_tokens2, raw_s2 = raw_encode(corpus, args.raw_sample_mb)
    report = json.loads(out.stdout)
    raw_mbps = (raw_mb + raw_mb2) / (raw_s + raw_s2)
    raw_tps = (raw_tokens + raw_tokens2) / (raw_s + raw_s2)
    prep_mbps = size / 1e6 / report["seconds"]
    prep_tps = report["tokens"] / report["seconds"]
    peak_gb = (report["peak_self_mb"] + args.workers * report["peak_worker_mb"]) / 1024
    print(f"raw encode_ordinary, 1 core : {raw_mbps:6.2f} MB/s {raw_tps:12,.0f} tokens/s")
    print(f"prepare_dataset, {args.workers} workers: {prep_mbps:6.2f} MB/s {prep_tps:12,.0f} tokens/s "
          f"({report['seconds']:.1f} s, {report['tokens']:,} tokens)")
    print(f"ratio prepare / (raw x {args.workers} cores): {prep_tps / (raw_tps * args.workers):.2f}  (target >= 0.80)")
    print(f"peak RSS: main {report['peak_self_mb']:.0f} MB, largest worker {report['peak_worker_mb']:.0f} MB, "
          f"all processes at most {peak_gb:.2f} GB  (target < 1.5 GB)")


if __name__ == "__main__":
    main()
