"""Bad input, as a new user gives it, against the three command-line tools and the Python API.

Every case is one row of CASES: it sets up a folder, runs a real CLI in a process of its own
(through ``quick_cli``; a few in a fresh interpreter) or calls the API, and checks the exit
status (1 for errors, 2 for bad arguments), that stderr is one line starting ``error:`` that
says what is wrong (a regular expression), that no traceback was printed, and that every file
that was in the folder before is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from slm_helpers.checkpoint import CheckpointError, RunExistsError, load_checkpoint, load_history
from slm_helpers.data import DataError, TokenDataset, get_batch, prepare_dataset, read_info
from slm_helpers.errors import SlmError
from slm_helpers.generate import generate_ids, load_model, next_token_distribution, write_story
from slm_helpers.model import GPT, GPTConfig, flops_per_token
from slm_helpers.optim import TrainConfig
from slm_helpers.plots import best_record, perplexity, plot_history
from slm_helpers.presets import get_preset
from slm_helpers.speed import autocast_matmul_seconds, positions_computed, time_alternately
from slm_helpers.tokenizer import get_tokenizer
from slm_helpers.train import train

import quick_cli
from conftest import command_env, requires_tokenizer

pytestmark = requires_tokenizer

RUN_STEPS = 4  # the finished ci-preset run that the train and generate cases start from
CAN_USE_CUDA = torch.cuda.is_available()


@dataclass
class Workspace:
    dataset: Path  # a complete synthetic dataset (300 / 40 stories)
    run: Path  # a finished `--preset ci --max-iters 4` run on it
    other: Path  # the same, of other stories (seed 8)
    compact: Path  # a compact vocabulary of 50 ids, of the same stories as `dataset`
    compact_run: Path  # a finished 2-step run on it
    other_compact: Path  # a compact vocabulary of 50 ids of the other stories: the same size, another mapping


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("bad-input")
    quiet = dict(num_workers=1, progress=False, log=lambda *a: None)
    for name, seed, vocab in [("dataset", 7, {}), ("other", 8, {}), ("compact", 7, dict(vocab="compact", vocab_size=50)),
                              ("other-compact", 8, dict(vocab="compact", vocab_size=50))]:
        prepare_dataset("synthetic", root / name, train_stories=300, validation_stories=40, seed=seed, **vocab, **quiet)
    preset = get_preset("ci", max_steps=RUN_STEPS, warmup_steps=0)  # what `--max-iters 4` asks for
    train(preset, data_dir=root / "dataset", out_dir=root / "run", progress=False, log=lambda *a: None)
    train(get_preset("ci", max_steps=2, warmup_steps=0), data_dir=root / "compact", out_dir=root / "compact-run",
          progress=False, log=lambda *a: None)
    return Workspace(root / "dataset", root / "run", root / "other", root / "compact", root / "compact-run",
                     root / "other-compact")


@dataclass
class Case:
    id: str
    setup: object  # (folder, ws) -> CLI arguments after `python -m` [with extra environment], or an API callable
    message: str  # regular expression the one line must match (after "error: " for errors)
    exit: int = 1  # for CLI cases; API cases expect `raises`
    raises: type[BaseException] | None = None
    skip: str | None = None
    replaces: tuple[str, ...] = ()  # files the command is asked to write again (a damaged one); all others stay


def data(*args):
    return ["slm_helpers.data", "--no-progress", *map(str, args)]


def training(*args):
    return ["slm_helpers.train", "--no-progress", "--preset", "ci", *map(str, args)]


def generating(*args):
    return ["slm_helpers.generate", *map(str, args)]


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def copy_run(ws: Workspace, folder: Path) -> Path:
    return Path(shutil.copytree(ws.run, folder / "run"))


def copy_dataset(ws: Workspace, folder: Path, dataset: Path | None = None) -> Path:
    return Path(shutil.copytree(dataset or ws.dataset, folder / "dataset"))


def edit_meta(dataset: Path, **changes) -> Path:
    meta = json.loads((dataset / "meta.json").read_text())
    (dataset / "meta.json").write_text(json.dumps({**meta, **changes}))
    return dataset


def ci_state(n_embd: int = 64) -> dict:
    return GPT(GPTConfig(**{**get_preset("ci").model.__dict__, "n_embd": n_embd})).state_dict()


STORIES = "Tom had a red ball.<|endoftext|>Mia saw a big dog.<|endoftext|>"
UNWRITABLE = Path("/sys/slm-from-scratch-test")  # refused even to root on Linux
SAME_DATA = ("--source", "synthetic", "--train-stories", 300, "--validation-stories", 40, "--seed", 7)

CASES = [
    # ------------------------------------------------------------------ python -m slm_helpers.data
    Case("data-binary-txt", lambda d, ws: data("--source", write(d / "s.txt", b"\x00\x01\x02" * 100), "--out-dir", d / "o"),
         r"s.txt holds NUL bytes, so it is not a text file"),
    Case("data-utf16-txt", lambda d, ws: data("--source", write(d / "s.txt", STORIES.encode("utf-16")), "--out-dir", d / "o"),
         r"s.txt is UTF-16 text: save it as UTF-8"),
    Case("data-latin1-txt", lambda d, ws: data("--source", write(d / "s.txt", "Zoë went out.\n".encode("latin-1") * 3),
                                               "--out-dir", d / "o"),
         r"s.txt is not UTF-8 text \(byte 0xeb cannot be decoded\): save it as UTF-8"),
    Case("data-jsonl-malformed-line", lambda d, ws: data("--source", write(d / "s.jsonl", '{"text": "a"}\n{"text": "b\n'),
                                                         "--out-dir", d / "o"),
         r"s.jsonl:2 is not valid JSON \(.*column \d+\): each line must be one object like"),
    Case("data-jsonl-null-text", lambda d, ws: data("--source", write(d / "s.jsonl", '{"text": "a"}\n\n{"text": null}\n'),
                                                    "--out-dir", d / "o"),
         r"s.jsonl:3: 'text' must be a string, not null"),
    Case("data-jsonl-number-text", lambda d, ws: data("--source", write(d / "s.jsonl", '{"text": 42}\n'), "--out-dir", d / "o"),
         r"s.jsonl:1: 'text' must be a string, not 42"),
    Case("data-jsonl-no-text-field", lambda d, ws: data("--source", write(d / "s.jsonl", '{"story": "a"}\n'),
                                                        "--out-dir", d / "o"),
         r"s.jsonl:1 has no 'text' field \(\['story'\]\)"),
    Case("data-fake-parquet", lambda d, ws: data("--source", write(d / "s.parquet", STORIES), "--out-dir", d / "o"),
         r"s.parquet is not a parquet file"),
    Case("data-unsupported-file", lambda d, ws: data("--source", write(d / "s.csv", STORIES), "--out-dir", d / "o"),
         r"s.csv: unsupported file type '.csv'; use one of .txt, .jsonl, .parquet"),
    Case("data-folder-with-one-split", lambda d, ws: data("--source", write(d / "src" / "train.txt", STORIES).parent,
                                                          "--out-dir", d / "o"),
         r"should hold files of both splits: names containing 'valid' for validation"),
    Case("data-one-story-txt", lambda d, ws: data("--source", write(d / "s.txt", "Tom had a red ball."), "--out-dir", d / "o"),
         r"split of '.*s.txt' holds no stories \(found \d train, \d validation\): a file holds both splits when it has "
         r"many stories, separated by <\|endoftext\|> or one per line"),
    Case("data-vocab-size-without-compact", lambda d, ws: data(*SAME_DATA, "--out-dir", d / "o", "--vocab-size", 100),
         r"--vocab-size is for --vocab compact or --vocab trained", exit=2),
    Case("data-trained-without-size", lambda d, ws: data(*SAME_DATA, "--out-dir", d / "o", "--vocab", "trained"),
         r"--vocab trained needs --vocab-size \(e.g. 4096\)", exit=2),
    Case("data-trained-size-below-bytes", lambda d, ws: data(*SAME_DATA, "--out-dir", d / "o", "--vocab", "trained",
                                                             "--vocab-size", 100),
         r"vocab='trained' \(--vocab trained\) needs vocab_size \(--vocab-size\) between 257 \(the 256 bytes and "
         r"<\|endoftext\|>\) and 65,536"),
    Case("data-vocab-size-one", lambda d, ws: data(*SAME_DATA, "--out-dir", d / "o", "--vocab", "compact",
                                                   "--vocab-size", 1),
         r"argument --vocab-size: '1' is not a whole number from 2 to 65,536 \(the bins hold uint16\)", exit=2),
    Case("data-vocab-unknown", lambda d, ws: data(*SAME_DATA, "--out-dir", d / "o", "--vocab", "small"),
         r"argument --vocab: invalid choice: 'small'", exit=2),
    Case("data-compact-over-full-dataset", lambda d, ws: data(*SAME_DATA, "--out-dir", copy_dataset(ws, d), "--vocab",
                                                              "compact"),
         r"already holds a dataset from 'synthetic' .* and the full vocabulary; pass overwrite=True \(--overwrite\)"),
    Case("data-unknown-source", lambda d, ws: data("--source", "tinystorie", "--out-dir", d / "o"),
         r"Unknown source 'tinystorie': use 'synthetic', 'tinystories' or the path"),
    Case("data-out-dir-is-a-file", lambda d, ws: data("--source", "synthetic", "--out-dir", write(d / "f", "x")),
         r"f is a file, not a folder: choose a folder for the dataset"),
    Case("data-out-dir-below-a-file", lambda d, ws: data("--source", "synthetic", "--out-dir", write(d / "f", "x") / "sub"),
         r"f/sub cannot be created: .*f is a file, not a folder"),
    Case("data-out-dir-unwritable", lambda d, ws: data("--source", "synthetic", "--train-stories", 5, "--out-dir", UNWRITABLE),
         r"cannot write /sys/slm-from-scratch-test \(Operation not permitted\): choose a folder you can write to",
         skip=None if sys.platform.startswith("linux") and Path("/sys").is_dir() else "needs Linux's /sys"),
    Case("data-negative-train-stories", lambda d, ws: data("--source", "synthetic", "--train-stories", -5, "--out-dir", d / "o"),
         r"argument --train-stories: '-5' is not a whole number >= 1 \(`python -m slm_helpers.data --help` lists", exit=2),
    Case("data-negative-validation-stories",
         lambda d, ws: data("--source", "synthetic", "--validation-stories", -1, "--out-dir", d / "o"),
         r"argument --validation-stories: '-1' is not a whole number >= 1", exit=2),
    Case("data-zero-tinystories-stories", lambda d, ws: data("--source", "tinystories", "--train-stories", 0, "--out-dir", d / "o"),
         r"argument --train-stories: '0' is not a whole number >= 1", exit=2),
    Case("data-counts-for-a-local-file", lambda d, ws: data("--source", write(d / "s.txt", STORIES), "--train-stories", 5,
                                                            "--out-dir", d / "o"),
         r"--train-stories and --validation-stories are for 'synthetic' and 'tinystories'; a local source is read whole",
         exit=2),
    Case("data-corrupt-meta-json", lambda d, ws: data(*SAME_DATA, "--out-dir", write(copy_dataset(ws, d) / "meta.json",
                                                                                      '{"source": "synth').parent),
         r"dataset/meta.json is not valid JSON \(.*\): the dataset is damaged: prepare it again with --overwrite"),
    Case("data-empty-meta-json", lambda d, ws: data(*SAME_DATA, "--out-dir", write(copy_dataset(ws, d) / "meta.json", "{}").parent),
         r"dataset/meta.json lacks source, source_options, tokenizer, n_vocab, eot_token, dtype, splits: the dataset "
         r"is damaged"),
    Case("data-overwrite-replaces-a-damaged-dataset",  # the way out that the message above points to
         lambda d, ws: data(*SAME_DATA, "--overwrite", "--out-dir", write(copy_dataset(ws, d) / "meta.json", "{").parent),
         r"dataset: dataset from 'synthetic' \(gpt2, uint16\):", exit=0,
         replaces=("dataset/meta.json", "dataset/train.bin", "dataset/validation.bin")),
    Case("data-truncated-bin-reused", lambda d, ws: data(*SAME_DATA, "--out-dir", truncate(copy_dataset(ws, d) / "train.bin")),
         r"dataset/train.bin holds [\d,]+ tokens but meta.json says [\d,]+: the file is damaged or cut short; prepare the "
         r"dataset again with --overwrite"),
    Case("data-disk-full", lambda d, ws: data("--source", "synthetic", "--train-stories", 50, "--validation-stories", 5,
                                              "--workers", 1, "--out-dir", full_disk(d / "o", "train.bin.tmp")),
         r"no space left on the device while writing .*o/train.bin.tmp: free some space, then run the same command again"),
    Case("data-ranks-file-not-ranks",
         lambda d, ws: (data("--source", "synthetic", "--out-dir", d / "o"),
                        {"SLM_GPT2_TIKTOKEN": str(write(d / "not-ranks.txt", "hello world\n"))}),
         r"SLM_GPT2_TIKTOKEN points at .*not-ranks.txt, which is not a GPT-2 ranks file \(.*\): online, unset "
         r"SLM_GPT2_TIKTOKEN"),
    Case("data-ranks-file-missing",
         lambda d, ws: (data("--source", "synthetic", "--out-dir", d / "o"), {"SLM_GPT2_TIKTOKEN": "/nonexistent/gpt2.tiktoken"}),
         r"SLM_GPT2_TIKTOKEN points at /nonexistent/gpt2.tiktoken, which is not a file: .*pip download"),
    # ------------------------------------------------------------------ python -m slm_helpers.train
    Case("train-device-cuda-without-cuda", lambda d, ws: training("--device", "cuda", "--out-dir", d / "r", "--data-dir", ws.dataset),
         r"device 'cuda' was requested, but this torch was built without CUDA: use device 'cpu' or 'auto'",
         skip="this machine has CUDA" if CAN_USE_CUDA else None),
    Case("train-device-gpu0", lambda d, ws: training("--device", "gpu0", "--out-dir", d / "r"),
         r"argument --device: 'gpu0' is not a device: use auto, cpu, cuda, cuda:N or mps", exit=2),
    Case("train-dtype-int8", lambda d, ws: training("--dtype", "int8", "--out-dir", d / "r"),
         r"argument --dtype: 'int8' is not a dtype: choose one of auto, bfloat16, float16, float32", exit=2),
    Case("train-max-iters-zero", lambda d, ws: training("--max-iters", 0, "--out-dir", d / "r"),
         r"argument --max-iters: '0' is not a whole number >= 1", exit=2),
    Case("train-resume-and-overwrite", lambda d, ws: training("--resume", "--overwrite", "--out-dir", d / "r"),
         r"--resume continues a run and --overwrite replaces it: give one of them", exit=2),
    Case("train-resume-corrupt-checkpoint",
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir",
                                write(copy_run(ws, d) / "checkpoint.pt", os.urandom(4096)).parent),
         r"run/checkpoint.pt cannot be read as a checkpoint \(\w+\): the file is damaged, cut short, or not one that "
         r"slm_helpers wrote"),
    Case("train-resume-truncated-checkpoint",
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir",
                                truncate(copy_run(ws, d) / "checkpoint.pt")),
         r"run/checkpoint.pt cannot be read as a checkpoint \(\w+\): the file is damaged, cut short"),
    Case("train-resume-foreign-checkpoint",
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir",
                                save(copy_run(ws, d) / "checkpoint.pt", {"weights": torch.zeros(3)}).parent),
         r"run/checkpoint.pt is not a training checkpoint of slm_helpers.train \(it lacks step, model, optimizer"),
    Case("train-resume-best-weights-as-checkpoint",
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir",
                                best_as_checkpoint(copy_run(ws, d))),
         r"run/checkpoint.pt holds best weights \(the model only, from step \d+\), not a training checkpoint: resuming "
         r"needs checkpoint.pt as train writes it"),
    Case("train-resume-other-max-iters",
         lambda d, ws: training("--resume", "--max-iters", 2 * RUN_STEPS, "--data-dir", ws.dataset, "--out-dir", copy_run(ws, d)),
         r"run/checkpoint.pt was trained with other settings \(max_steps 4 in the checkpoint, 8 now\): resume with "
         r"the same settings, or start a new run with --overwrite"),
    Case("train-new-run-over-a-finished-one",
         lambda d, ws: training("--max-iters", 2, "--data-dir", ws.dataset, "--out-dir", copy_run(ws, d)),
         r"run already holds a run \(checkpoint.pt, best_model_params.pt, history.json\): resume it with --resume"),
    Case("train-resume-a-finished-run",
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir", copy_run(ws, d)),
         r"already finished: 4 of 4 steps, best validation loss \d+\.\d{4}; files in .*run \(--overwrite starts a new run\)",
         exit=0),
    Case("train-resume-writes-a-damaged-history-again",  # a finished run: its history comes back from the checkpoint
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir",
                                write(copy_run(ws, d) / "history.json", "[{").parent),
         r"already finished: 4 of 4 steps", exit=0, replaces=("run/history.json",)),
    Case("train-out-dir-is-a-file", lambda d, ws: training("--data-dir", ws.dataset, "--out-dir", write(d / "f", "x")),
         r"/f is a file, not a folder: choose a folder for the run's files"),
    Case("train-disk-full-while-saving",
         lambda d, ws: training("--max-iters", 2, "--data-dir", ws.dataset, "--out-dir", full_disk(d / "r", "best_model_params.pt.tmp")),
         r"no space left on the device while writing .*r/best_model_params.pt: free some space"),
    Case("train-dataset-of-another-tokenizer",
         lambda d, ws: training("--data-dir", edit_meta(copy_dataset(ws, d), tokenizer="cl100k_base"), "--out-dir", d / "r"),
         r"dataset was tokenized with 'cl100k_base', but this series trains on GPT-2 ids"),
    Case("train-dataset-larger-vocabulary",
         lambda d, ws: training("--data-dir", edit_meta(copy_dataset(ws, d), n_vocab=100_277), "--out-dir", d / "r"),
         r"dataset: meta.json says the tokens are ids of gpt2 \(100,277 ids, .*\), but the files give gpt2 \(50,257 ids, "
         r".*\): one of them was edited or copied from another dataset; prepare the dataset again with --overwrite"),
    Case("train-gpu-preset-offline",  # HF_HUB_OFFLINE with an empty cache: the hub is out of reach on any machine
         lambda d, ws: (["slm_helpers.train", "--no-progress", "--preset", "gpu", "--out-dir", str(d / "r")],
                        {"HF_HUB_OFFLINE": "1", "HF_HOME": str(d / "hf"), "SLM_DATA_DIR": str(d / "data")}),
         r"could not load roneneldan/TinyStories from the Hugging Face hub \(ConnectionError: .*\): the gpu preset "
         r"trains on all of TinyStories and has no substitute; without internet, prepare TinyStories files you "
         r"downloaded into its folder"),
    Case("train-data-dir-with-other-files",
         lambda d, ws: training("--data-dir", write(d / "mine" / "notes.txt", "x").parent, "--out-dir", d / "r"),
         r"mine holds no complete dataset \(no meta.json\) but other files \(notes.txt\): prepare one there with "
         r"python -m slm_helpers.data"),
    Case("train-explicit-data-dir-of-other-options",  # handled well: used as it is, whatever prepared it
         lambda d, ws: training("--max-iters", 1, "--data-dir", ws.dataset, "--out-dir", d / "r"),
         r"training on .*dataset: [\d,]+ train tokens from 'synthetic'", exit=0),
    Case("train-resume-checkpoint-missing",  # the run's best weights and history are there: never start over them
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.dataset, "--out-dir",
                                remove(copy_run(ws, d) / "checkpoint.pt")),
         r"run holds a run \(best_model_params.pt, history.json\) but not its checkpoint.pt, which resuming needs: its "
         r"files are kept; start a new run there with --overwrite"),
    Case("train-resume-on-other-stories",
         lambda d, ws: training("--resume", "--max-iters", RUN_STEPS, "--data-dir", ws.other, "--out-dir", copy_run(ws, d)),
         r"run/checkpoint.pt was trained on 'synthetic' with \{.*'seed': 7\}: 300 train stories \([\d,]+ tokens\), 40 "
         r"validation stories \([\d,]+ tokens\), but .*other holds 'synthetic' with \{.*'seed': 8\}: .* resume on the data "
         r"the run was trained on"),
    Case("train-resume-on-another-compact-vocabulary-of-the-same-size",
         lambda d, ws: training("--resume", "--max-iters", 2, "--data-dir", ws.other_compact, "--out-dir",
                                Path(shutil.copytree(ws.compact_run, d / "run"))),
         r"run/checkpoint.pt was trained with a compact vocabulary of 50 ids \(mapping (\w+)\), but .*other-compact has a "
         r"compact vocabulary of 50 ids \(mapping (?!\1)\w+\): resume on the dataset the run was trained on"),
    Case("train-vocab-json-reordered",
         lambda d, ws: training("--data-dir", edit_vocab(copy_dataset(ws, d, ws.compact), reverse=True), "--out-dir", d / "r"),
         r"dataset/vocab.json has been changed since it was made \(its ids no longer match its fingerprint \w+\): the "
         r"ids would mean other tokens; prepare the dataset again with --overwrite"),
    Case("train-vocab-json-of-another-dataset-of-the-same-size",
         lambda d, ws: training("--data-dir", replace_file(copy_dataset(ws, d, ws.compact), ws.other_compact / "vocab.json"),
                                "--out-dir", d / "r"),
         r"dataset: meta.json says the tokens are ids of gpt2-compact-50-\w+ \(50 ids, .*\), but the files give "
         r"gpt2-compact-50-\w+ \(50 ids, .*\): one of them was edited or copied from another dataset"),
    Case("train-dtype-float16-on-a-cpu",  # fp16 without a GradScaler: most gradients underflow to zero
         lambda d, ws: training("--dtype", "float16", "--device", "cpu", "--data-dir", ws.dataset, "--out-dir", d / "r"),
         r"dtype 'float16' needs a GradScaler against underflow, which this series enables on CUDA only: on cpu choose "
         r"'bfloat16' or 'float32'"),
    Case("train-data-dir-that-does-not-exist",  # a typo must not become a new dataset
         lambda d, ws: training("--data-dir", d / "datsaet", "--out-dir", d / "r"),
         r"datsaet does not exist: --data-dir names a prepared dataset \(prepare one with python -m slm_helpers.data "
         r"--out-dir .*\), or leave it out to use the preset's own"),
    Case("train-preset-unknown", lambda d, ws: ["slm_helpers.train", "--preset", "bogus", "--out-dir", str(d / "r")],
         r"argument --preset: 'bogus' is not a preset: choose one of ci, cpu, modern, gpu, gpu-long", exit=2),
    Case("train-dtype-fp8", lambda d, ws: training("--dtype", "fp8", "--out-dir", d / "r"),
         r"argument --dtype: 'fp8' is not a dtype: choose one of auto, bfloat16, float16, float32", exit=2),
    Case("train-out-dir-unwritable", lambda d, ws: training("--data-dir", ws.dataset, "--out-dir", UNWRITABLE),
         r"cannot write /sys/slm-from-scratch-test \(Operation not permitted\): choose a folder you can write to",
         skip=None if sys.platform.startswith("linux") and Path("/sys").is_dir() else "needs Linux's /sys"),
    # ------------------------------------------------------------------ python -m slm_helpers.generate
    Case("generate-seed-too-large",
         lambda d, ws: generating("--checkpoint", ws.run / "best_model_params.pt", "--seed", "99999999999999999999999"),
         r"argument --seed: '99999999999999999999999' is not a whole number from 0 to 9,223,372,036,854,775,807", exit=2),
    Case("generate-weights-not-finite",
         lambda d, ws: generating("--checkpoint", with_nan(d / "w.pt", ws.run / "best_model_params.pt")),
         r"w.pt holds weights that are not finite \(NaN or infinity in transformer.wte.weight"),
    Case("generate-temperature-nan", lambda d, ws: generating("--checkpoint", ws.run / "best_model_params.pt", "--temperature", "nan"),
         r"argument --temperature: 'nan' is not a finite number >= 0", exit=2),
    Case("generate-temperature-inf", lambda d, ws: generating("--checkpoint", ws.run / "best_model_params.pt", "--temperature", "inf"),
         r"argument --temperature: 'inf' is not a finite number >= 0", exit=2),
    Case("generate-top-p-zero", lambda d, ws: generating("--checkpoint", ws.run / "best_model_params.pt", "--top-p", "0"),
         r"argument --top-p: '0' is not a number in \(0, 1\]", exit=2),
    Case("generate-max-new-tokens-zero",
         lambda d, ws: generating("--checkpoint", ws.run / "best_model_params.pt", "--max-new-tokens", "0"),
         r"argument --max-new-tokens: '0' is not a whole number >= 1", exit=2),
    Case("generate-device-cuda-without-cuda",
         lambda d, ws: generating("--checkpoint", ws.run / "best_model_params.pt", "--device", "cuda"),
         r"device 'cuda' was requested, but this torch was built without CUDA: use device 'cpu' or 'auto'",
         skip="this machine has CUDA" if CAN_USE_CUDA else None),
    Case("generate-missing-checkpoint", lambda d, ws: generating("--checkpoint", d / "nope.pt"),
         r"no weights file at .*nope.pt: notebook 04 or `python -m slm_helpers.train` writes it"),
    Case("generate-corrupt-checkpoint", lambda d, ws: generating("--checkpoint", write(d / "w.pt", os.urandom(2000))),
         r"w.pt cannot be read as a weights file \(\w+\): the file is damaged"),
    # Damaged bytes that open like a pickle of protocol 29 (CI drew such random bytes once): torch warns, then fails.
    Case("generate-checkpoint-of-pickle-protocol-29", lambda d, ws: generating("--checkpoint", write(d / "w.pt", b"\x80\x1d" + bytes(range(256)) * 4)),
         r"w.pt cannot be read as a weights file \(\w+\): the file is damaged"),
    Case("generate-pickled-code", lambda d, ws: generating("--checkpoint", save(d / "w.pt", {"model": Path("x")})),
         r"w.pt holds objects that torch.load\(weights_only=True\) refuses to load: it was not written by slm_helpers"),
    Case("generate-bare-state-dict", lambda d, ws: generating("--checkpoint", save(d / "w.pt", ci_state())),
         r"w.pt holds bare weights without a model configuration \(as the original script saved them\): use the "
         r"best_model_params.pt or checkpoint.pt"),
    Case("generate-checkpoint-of-another-shape",
         lambda d, ws: generating("--checkpoint", save(d / "w.pt", {"model_config": get_preset("ci").model.__dict__,
                                                                   "model": ci_state(n_embd=32)})),
         r"w.pt does not fit the model GPTConfig\(.*n_embd=64.*\): shapes differ: transformer.wte.weight \(50257, 32\) in "
         r"the file vs \(50257, 64\) in the model; .*transformer.h.1.mlp.c_proj.bias \(32,\) in the file vs \(64,\) in "
         r"the model; .*lm_head.weight \(50257, 32\) in the file vs \(50257, 64\) in the model$"),
    # ------------------------------------------------------------------ the Python API
    Case("api-config-block-size-str", lambda d, ws: lambda: GPTConfig(block_size="64"),
         r"block_size must be a whole number \(int\), not str '64'", raises=ValueError),
    Case("api-config-n-embd-float", lambda d, ws: lambda: GPTConfig(n_embd=64.0),
         r"n_embd must be a whole number \(int\), not float 64.0", raises=ValueError),
    Case("api-idx-1d", lambda d, ws: lambda: GPT(GPTConfig(n_layer=1, n_embd=12, n_head=2))(torch.tensor([1, 2, 3])),
         r"idx must be 2-D, \(batch, time\), not of shape \(3,\): add a batch dimension with idx\[None\]", raises=ValueError),
    Case("api-idx-float", lambda d, ws: lambda: GPT(GPTConfig(n_layer=1, n_embd=12, n_head=2))(torch.ones(1, 3)),
         r"idx must hold integer token ids \(torch.long\), not torch.float32", raises=ValueError),
    Case("api-get-batch-size-0", lambda d, ws: lambda: get_batch(ws.dataset, "train", batch_size=0, block_size=8),
         r"batch_size must be a whole number >= 1, not 0", raises=ValueError),
    Case("api-get-batch-block-0", lambda d, ws: lambda: get_batch(ws.dataset, "train", batch_size=2, block_size=0),
         r"block_size must be a whole number >= 1, not 0", raises=ValueError),
    Case("api-get-batch-block-negative", lambda d, ws: lambda: get_batch(ws.dataset, "train", batch_size=2, block_size=-4),
         r"block_size must be a whole number >= 1, not -4", raises=ValueError),
    Case("api-top-p-0", lambda d, ws: lambda: next_token_distribution(torch.randn(10), top_p=0),
         r"top_p must be in \(0, 1\]", raises=ValueError),
    Case("api-temperature-inf", lambda d, ws: lambda: next_token_distribution(torch.randn(10), temperature=math.inf, top_k=3),
         r"temperature must be a finite number >= 0", raises=ValueError),
    Case("api-learning-rate-nan", lambda d, ws: lambda: TrainConfig(learning_rate=math.nan),
         r"learning_rate must be a finite number >= 0, not nan", raises=ValueError),
    Case("api-load-checkpoint-truncated", lambda d, ws: lambda: load_checkpoint(truncate(copy_run(ws, d) / "checkpoint.pt") / "checkpoint.pt"),
         r"checkpoint.pt cannot be read as a checkpoint", raises=CheckpointError),
    Case("api-read-info-empty-meta", lambda d, ws: lambda: read_info(write(copy_dataset(ws, d) / "meta.json", "{}").parent),
         r"meta.json lacks source", raises=DataError),
    Case("api-prepare-negative-stories",
         lambda d, ws: lambda: prepare_dataset("synthetic", d / "o", train_stories=-1, validation_stories=5, progress=False),
         r"train_stories must be a whole number >= 1, not -1", raises=DataError),
    Case("api-train-config-dict",
         lambda d, ws: lambda: train(model_config=get_preset("ci").model, train_config=dict(batch_size=2),
                                     data_dir=ws.dataset, out_dir=d / "r", progress=False),
         r"train_config must be a TrainConfig, not dict: TrainConfig\(\*\*settings\) makes one from a dict", raises=SlmError),
    Case("api-train-stop-at-negative-step",
         lambda d, ws: lambda: train("ci", data_dir=ws.dataset, out_dir=d / "r", stop_at_step=-1, progress=False),
         r"stop_at_step must be a whole number >= 0 \(or None\), not -1", raises=SlmError),
    Case("api-get-preset-unknown-setting", lambda d, ws: lambda: get_preset("ci", learning_rat=1e-3),
         r"learning_rat is not a training setting \(TrainConfig\): they are batch_size, .*learning_rate", raises=SlmError),
    Case("api-betas-one-number", lambda d, ws: lambda: TrainConfig(betas=0.9),
         r"betas must be two numbers in \[0, 1\), such as \(0.9, 0.95\), not 0.9", raises=SlmError),
    Case("api-plot-history-one-record",
         lambda d, ws: lambda: plot_history(load_history(ws.run)[0]),
         r"history must be a list of evaluation records \(train\(...\).history or load_history\(folder\)\), not dict",
         raises=SlmError),
    Case("api-plot-history-a-path", lambda d, ws: lambda: plot_history(ws.run),
         r"history must be a list of evaluation records .*not PosixPath: load_history\(path\) reads a run's history",
         raises=SlmError),
    Case("api-plot-history-without-train-loss",
         lambda d, ws: lambda: plot_history([{"step": 0, "tokens": 0, "val_loss": 10.0}]),
         r"record 0 of the history lacks lr, train_loss: plot_history draws records as train\(\) writes them",
         raises=SlmError),
    Case("api-best-record-of-nothing", lambda d, ws: lambda: best_record([]),
         r"the history is empty: train for at least one evaluation first", raises=SlmError),
    Case("api-perplexity-of-a-huge-loss", lambda d, ws: lambda: perplexity(1000),
         r"a loss of 1000 nats per token has a perplexity beyond any float \(exp\(1000\)\): perplexity takes a per-token "
         r"cross-entropy, e.g. 5.49", raises=SlmError),
    Case("api-time-alternately-no-rounds", lambda d, ws: lambda: time_alternately({"a": lambda: None}, rounds=0),
         r"rounds must be a whole number >= 1, not 0", raises=SlmError),
    Case("api-autocast-matmul-of-a-word", lambda d, ws: lambda: autocast_matmul_seconds("fp8"),
         r"dtype must be torch.float32, torch.bfloat16 or torch.float16 \(or their names\), not 'fp8'", raises=SlmError),
    Case("api-flops-of-a-preset", lambda d, ws: lambda: flops_per_token(get_preset("ci")),
         r"flops_per_token takes a model configuration \(preset.model\), not Preset", raises=SlmError),
    Case("api-write-story-without-tokenizer",
         lambda d, ws: lambda: write_story(load_model(ws.run / "best_model_params.pt")[0], None, "Once"),
         r"tokenizer must be the Tokenizer that load_model returns with the model \(model, tokenizer = load_model\(path\)\), "
         r"not NoneType", raises=SlmError),
    Case("api-load-model-on-missing-cuda",
         lambda d, ws: lambda: load_model(ws.run / "best_model_params.pt", device="cuda"),
         r"device 'cuda' was requested, but this torch was built without CUDA: use device 'cpu' or 'auto'",
         raises=SlmError, skip="this machine has CUDA" if CAN_USE_CUDA else None),
    Case("api-next-token-of-a-batch", lambda d, ws: lambda: next_token_distribution(torch.randn(2, 5, 10)),
         r"logits must be one row of scores, shape \(vocab_size,\), not \(2, 5, 10\)", raises=SlmError),
    Case("api-gpt2-ids-for-a-compact-model",  # GPT-2's ids of ',' and '.' are below the compact size: they fit, wrongly
         lambda d, ws: lambda: list(generate_ids(load_model(ws.compact_run / "best_model_params.pt")[0],
                                                 get_tokenizer().encode_ordinary(",."), 3)),
         r"the prompt's ids were made by the tokenizer 'gpt2', but the model reads 'gpt2-compact-50-\w+' ids: encode the "
         r"prompt with the tokenizer load_model returns", raises=SlmError),
    Case("api-positions-of-a-short-context", lambda d, ws: lambda: positions_computed(2, False, prompt_tokens=10),
         r"context must be larger than prompt_tokens \(10\), not 2", raises=SlmError),
    Case("api-train-over-a-finished-run",
         lambda d, ws: lambda: train(get_preset("ci", max_steps=2, warmup_steps=0), data_dir=ws.dataset,
                                     out_dir=copy_run(ws, d), progress=False),
         r"already holds a run .*resume it with --resume \(resume=True\), replace it with --overwrite \(overwrite=True\)",
         raises=RunExistsError),
]


def remove(path: Path) -> Path:
    """Delete a file; returns its folder."""
    path.unlink()
    return path.parent


def edit_vocab(dataset: Path, reverse: bool) -> Path:
    """Reorder a compact dataset's mapping by hand, keeping its fingerprint."""
    mapping = json.loads((dataset / "vocab.json").read_text())
    mapping["gpt2_ids"] = mapping["gpt2_ids"][::-1] if reverse else mapping["gpt2_ids"]
    (dataset / "vocab.json").write_text(json.dumps(mapping))
    return dataset


def replace_file(folder: Path, source: Path) -> Path:
    shutil.copy(source, folder / source.name)
    return folder


def with_nan(path: Path, weights: Path) -> Path:
    """A weights file whose embedding holds NaN, as a run that diverged could leave."""
    saved = torch.load(weights, weights_only=True)
    saved["model"]["transformer.wte.weight"][0, 0] = float("nan")
    torch.save(saved, path)
    return path


def truncate(path: Path) -> Path:
    """Cut a file to half its size, as an interrupted copy would; returns its folder."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path.parent


def save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def best_as_checkpoint(run: Path) -> Path:
    shutil.copy(run / "best_model_params.pt", run / "checkpoint.pt")
    return run


def full_disk(folder: Path, name: str) -> Path:
    """A folder in which writing ``name`` fails with ENOSPC, as on a full disk: the file is a
    link to /dev/full."""
    folder.mkdir(parents=True)
    (folder / name).symlink_to("/dev/full")
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (temporary and lock files aside) and a hash of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.endswith((".tmp", ".lock"))}


# Each command in a fresh interpreter too, as a user runs it; the other cases go through quick_cli,
# which runs the same __main__ in a process of its own, forked from one that imported torch once.
FRESH_INTERPRETER = {"data-binary-txt", "train-dtype-fp8", "generate-device-cuda-without-cuda"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_line(case: Case, ws: Workspace, tmp_path: Path):
    if case.skip:
        pytest.skip(case.skip)
    if case.id.startswith(("data-disk-full", "train-disk-full")) and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full to stand for a full disk")
    run, extra_env = case.setup(tmp_path, ws), {}
    if isinstance(run, tuple):
        run, extra_env = run
    before = snapshot(tmp_path)
    if case.raises is not None:
        with pytest.raises(case.raises) as raised:
            run()
        message = str(raised.value)
        assert "\n" not in message
        assert "weights_only=False" not in message
        assert re.search(case.message, message), message
    else:
        env = command_env(extra_env)
        if extra_env or case.id in FRESH_INTERPRETER:
            proc = subprocess.run([sys.executable, "-m", *run], capture_output=True, text=True, env=env, timeout=300,
                                  cwd=tmp_path, stdin=subprocess.DEVNULL)
        else:
            proc = quick_cli.run(run, env, cwd=tmp_path)
        assert proc.returncode == case.exit, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert "weights_only=False" not in proc.stderr
        if case.exit == 0:
            assert re.search(case.message, proc.stdout), proc.stdout
        else:
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
            assert re.search(case.message, lines[0]), lines[0]
            if run[0] == "slm_helpers.generate":
                assert proc.stdout == ""  # nothing printed before the error, not even the prompt
    after = snapshot(tmp_path)
    kept = {name: digest for name, digest in before.items() if name not in case.replaces}
    assert {name: after.get(name) for name in kept} == kept, "a file that was there has changed"
    for name in case.replaces:  # written again, whole
        assert name in after, f"{name} is gone"
    if "run/history.json" in case.replaces:
        assert load_history(tmp_path / "run") == load_history(ws.run)
    if "dataset/meta.json" in case.replaces:
        assert TokenDataset.open(tmp_path / "dataset").info.splits == TokenDataset.open(ws.dataset).info.splits


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
