"""Named sizes for the whole series: which data, how big a model, how long to train.

* ``ci``       - seconds on 2 CPU cores: what CI runs, and what the stored notebook outputs
  show. It always trains on the CPU in fp32, whatever the machine offers, so its numbers are
  the same on every machine (a GPU, or a CPU with native bf16, would print other losses).
* ``cpu``      - about 15 minutes on a 2-core laptop: the first 35,000 TinyStories, streamed
  from the hub, with their 8,192 most used ids; offline, the built-in synthetic stories,
  saying so.
* ``modern``   - the same 15 minutes and stories with the modern recipe (notebook 09): a
  tokenizer of 4,096 ids learned from the stories, rotary positions, RMSNorm, ReLU², QK-norm,
  an untied head and Muon.
* ``gpu``      - the original run's model and its real compute (~82M tokens), bugs fixed.
* ``gpu-long`` - the same model on an epoch's worth of TinyStories' tokens (~490M): A100/H100.

Every notebook picks one with a ``PRESET`` variable at its top; ``None`` means the
environment variable ``SLM_PRESET`` if set, else ``gpu`` where CUDA is available and ``cpu``
otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from slm_helpers.errors import SlmError
from slm_helpers.model import GPTConfig
from slm_helpers.optim import TrainConfig

PRESET_ENV = "SLM_PRESET"
DATA_DIR_ENV = "SLM_DATA_DIR"
RUNS_DIR_ENV = "SLM_RUNS_DIR"


def project_root() -> Path:
    """The repository folder (holding ``data/`` and ``runs/``): the package's parent when
    installed from a clone with ``pip install -e .``, else the current folder."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def results_file(name: str) -> Path:
    """A file of the series' ``notebooks/results/`` (what the real runs measured, which the
    notebooks quote), found from any working folder: Colab runs a notebook from ``/content``."""
    path = project_root() / "notebooks" / "results" / name
    if not path.is_file():
        raise SlmError(f"no results file {path}: open the notebooks from a clone of the series "
                       "(README.md), which holds notebooks/results/")
    return path


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data_source: str  # "synthetic", "tinystories" or a local path
    data_options: dict = field(default_factory=dict)  # empty: the whole source
    vocab: str = "full"  # "full": GPT-2's 50,257 ids; "compact": the ids the stories use (slm_helpers.vocab);
    # "trained": a tokenizer learned from the training stories (slm_helpers.trained_tokenizer)
    vocab_size: int | None = None  # compact: keep this many ids (None: every id the training split uses); trained:
    # its size
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Used, saying so in one line, when data_source is the hub and the hub cannot be reached.
    fallback_source: str | None = None
    fallback_options: dict = field(default_factory=dict)
    # Notebook 08: fine-tuning the trained model on request records (slm_helpers.instruct).
    finetune: TrainConfig | None = None
    requests: dict = field(default_factory=dict)  # train_records, validation_records

    def requests_dir_for(self, source: str) -> Path:
        """Where the request records of notebook 08 made from ``source`` live, beside the data
        (``requests-tinystories-cpu``, ``requests-synthetic-ci``)."""
        data_dir = Path(os.environ.get(DATA_DIR_ENV) or project_root() / "data")
        return data_dir / f"requests-{Path(source).name}-{self.name}"

    @property
    def finetune_dir(self) -> Path:
        """Where fine-tuning writes its run (``runs/<preset>-requests``)."""
        return self.out_dir.with_name(f"{self.name}-requests")

    def data_dir_for(self, source: str, options: dict) -> Path:
        """Where a dataset of ``source`` lives (``$SLM_DATA_DIR`` or ``data/`` in the
        repository): a whole source in a folder of its name, shared by presets (``tinystories``);
        a part of one in a folder of this preset (``tinystories-cpu``); a compact vocabulary's
        with it in the name (``synthetic-ci-compact``, ``tinystories-cpu-compact8192``)."""
        root = Path(os.environ.get(DATA_DIR_ENV) or project_root() / "data")
        name = f"{Path(source).name}-{self.name}" if options else Path(source).name
        if self.vocab == "compact":
            name += f"-compact{self.vocab_size or ''}"
        elif self.vocab == "trained":
            name += f"-bpe{self.vocab_size}"
        return root / name

    @property
    def data_dir(self) -> Path:
        """Where this preset's own dataset lives (:func:`slm_helpers.data.preset_dataset`
        prepares it, or the fallback's, when missing)."""
        return self.data_dir_for(self.data_source, self.data_options)

    @property
    def out_dir(self) -> Path:
        """Where training writes weights, checkpoint and history (``$SLM_RUNS_DIR`` or ``runs/``)."""
        return Path(os.environ.get(RUNS_DIR_ENV) or project_root() / "runs") / self.name


# The original's real compute: its "20,000 iterations" were micro-batches, i.e. 625 optimizer
# steps of 32 x 32 x 128 = 131,072 tokens, 81.9M tokens in all. We spend the same 81.9M tokens in
# 5,000 steps of 32 x 4 x 128 = 16,384 tokens: 8x more updates for the same compute, which is
# what a model this size wants (a batch of ~16K tokens is already large for 30M parameters).
# With that many steps, the peak learning rate can be 6e-4 (nanoGPT's for GPT-2 small) instead
# of the original's 1e-4, which over 625 steps left the model undertrained; warmup is 5% of
# the run; the floor is peak / 10 (bug 1). Evaluation: 50 batches per split every 250 steps,
# about 3% of the training compute (bug 4: the original's cost twice the training).
ORIGINAL_MODEL = GPTConfig(block_size=128, n_layer=6, n_head=6, n_embd=384, dropout=0.1)
GPU_TRAIN = TrainConfig(
    batch_size=32, grad_accum_steps=4, max_steps=5_000, warmup_steps=250, learning_rate=6e-4, min_lr=6e-5,
    eval_interval=250, eval_batches=50, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-9, grad_clip=0.5,
)

# Notebook 08's fine-tuning on request records: a fifth of the run's steps at a third of its rate.
GPU_FINETUNE = replace(GPU_TRAIN, max_steps=1_000, warmup_steps=50, learning_rate=2e-4, min_lr=2e-5,
                       eval_interval=100, eval_batches=20)
GPU_REQUESTS = dict(train_records=100_000, validation_records=500, window_words=70)


# Notebook 08 on a laptop (cpu, modern): 700 steps at half the rate, on 10,000 request records.
LAPTOP_FINETUNE = TrainConfig(batch_size=32, grad_accum_steps=1, max_steps=700, warmup_steps=35, learning_rate=3e-3,
                              min_lr=3e-4, eval_interval=70, eval_batches=10, weight_decay=0.1)
LAPTOP_REQUESTS = dict(train_records=10_000, validation_records=200, window_words=70)

# The modern recipe's model switches (slm_helpers.modern), all on: notebook 09 adds them one at a time.
MODERN_PIECES = dict(position="rotary", norm="rmsnorm", mlp="relu2", qk_norm=True, tie_head=False)
# ... and its training switches: Muon for the blocks' matrices; nanochat's AdamW half (the embedding and
# the untied head at rates of their own, no weight decay, beta1 0.8); the peak held, then a straight
# line down over the last 40% of the steps.
MODERN_TRAINING = dict(optimizer="muon", muon_lr=0.02, embedding_lr=0.3, head_lr=0.008, weight_decay=0.0,
                       betas=(0.8, 0.95), schedule="wsd", decay_fraction=0.4)

PRESETS: dict[str, Preset] = {
    # The built-in stories use 642 of GPT-2's ids: a compact vocabulary of 658 (those, the 15 more
    # that notebook 08's request format needs, and <unk>) makes the head 76x smaller, so 200 steps
    # of 1,024 tokens take seconds and the model learns the stories' words and phrases, beating the
    # unigram and bigram tables of its data (notebook 05).
    "ci": Preset(
        name="ci",
        description="seconds on 2 CPU cores: the built-in stories, with their compact vocabulary",
        data_source="synthetic",
        data_options=dict(train_stories=2_000, validation_stories=200, seed=0),
        vocab="compact",
        model=GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64, dropout=0.0),
        train=TrainConfig(
            batch_size=16, grad_accum_steps=1, max_steps=200, warmup_steps=20, learning_rate=1e-2, min_lr=1e-3,
            eval_interval=50, eval_batches=4, weight_decay=0.1,
            device="cpu", dtype="float32",  # reproducible everywhere: the saved outputs are compared by nbval
        ),
        finetune=TrainConfig(
            batch_size=16, grad_accum_steps=1, max_steps=150, warmup_steps=10, learning_rate=3e-3, min_lr=3e-4,
            eval_interval=50, eval_batches=4, weight_decay=0.1, device="cpu", dtype="float32",
        ),
        requests=dict(train_records=1_000, validation_records=100, window_words=30),
    ),
    # Tuned on real TinyStories (benchmarks/tune_cpu_preset.py, its table in
    # benchmarks/results/cpu-preset-tuning.json) for the lowest validation bits per byte after
    # 15 minutes of fp32 training on 2 CPU cores: the stories' 8,192 most used ids (99.9% of
    # their tokens) instead of GPT-2's 50,257 make a step ~4x cheaper, and the time saved buys
    # more tokens. 1,700 steps x 4,096 tokens = 7.0M tokens: online, the first 35,000 stories
    # (~7.1M tokens), so no story is seen twice; the validation stories are TinyStories' first 500.
    "cpu": Preset(
        name="cpu",
        description="about 15 minutes on a 2-core laptop: 35,000 TinyStories with their 8,192 most used ids "
                    "(offline: the built-in stories)",
        data_source="tinystories",
        data_options=dict(train_stories=35_000, validation_stories=500),
        vocab="compact",
        vocab_size=8_192,
        fallback_source="synthetic",
        fallback_options=dict(train_stories=20_000, validation_stories=1_000, seed=0),
        model=GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        train=TrainConfig(
            batch_size=32, grad_accum_steps=1, max_steps=1_700, warmup_steps=85, learning_rate=6e-3, min_lr=6e-4,
            eval_interval=170, eval_batches=10, weight_decay=0.1,
        ),
        finetune=LAPTOP_FINETUNE,
        requests=LAPTOP_REQUESTS,
    ),
    # The cpu preset's model size and rates with the modern pieces, each kept for what it did on a
    # development split of real TinyStories, never on validation (benchmarks/tune_modern_preset.py: each
    # piece added in turn, 300 s of fp32 training on 2 CPU cores; its table in
    # notebooks/results/modern-preset-tuning.json, whose last rows chose MODERN_TRAINING's rates and
    # schedule). A tokenizer of 4,096 ids learned from the stories
    # writes them in about as many tokens as the compact vocabulary's 8,192 with half the head, so a step
    # is cheaper; rotary, Muon and the rates make each step count for more. 1,700 steps fit 15 minutes at
    # the 0.51 s a step first measured on a 2-core AVX-512 machine; benchmarks/time_to_quality.py, which
    # compares it with the cpu preset, fitted 2,092 on a 2-core AVX2 one
    # (notebooks/results/modern-preset-time-to-quality.json).
    "modern": Preset(
        name="modern",
        description="about 15 minutes on a 2-core laptop, the modern recipe: 35,000 TinyStories with a tokenizer of "
                    "4,096 ids learned from them, rotary, RMSNorm, ReLU², QK-norm, untied head, Muon "
                    "(offline: the built-in stories)",
        data_source="tinystories",
        data_options=dict(train_stories=35_000, validation_stories=500),
        vocab="trained",
        vocab_size=4_096,
        fallback_source="synthetic",
        fallback_options=dict(train_stories=20_000, validation_stories=1_000, seed=0),
        model=GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0, **MODERN_PIECES),
        train=TrainConfig(
            batch_size=32, grad_accum_steps=1, max_steps=1_700, warmup_steps=85, learning_rate=6e-3, min_lr=0.0,
            eval_interval=170, eval_batches=10, **MODERN_TRAINING,
        ),
        finetune=LAPTOP_FINETUNE,
        requests=LAPTOP_REQUESTS,
    ),
    "gpu": Preset(
        name="gpu",
        description="the original run's model and compute: TinyStories, 6x384, 81.9M tokens, bugs fixed",
        data_source="tinystories",
        model=ORIGINAL_MODEL,
        train=GPU_TRAIN,
        finetune=GPU_FINETUNE,
        requests=GPU_REQUESTS,
    ),
    # An epoch's worth: 15,000 steps x 32,768 tokens = 492M tokens, about all of TinyStories' train split.
    # Windows are drawn at random with replacement, so about exp(-492/470), a third, of the tokens are
    # never drawn: this is as many tokens as an epoch, not every token once.
    "gpu-long": Preset(
        name="gpu-long",
        description="the same model on an epoch's worth of TinyStories' tokens (492M, windows drawn at random): "
                    "an A100/H100 run",
        data_source="tinystories",
        model=ORIGINAL_MODEL,
        train=replace(GPU_TRAIN, grad_accum_steps=8, max_steps=15_000, warmup_steps=500, eval_interval=500,
                      eval_batches=100),
        finetune=GPU_FINETUNE,
        requests=GPU_REQUESTS,
    ),
}


def default_preset_name() -> str:
    """``$SLM_PRESET`` if set, else ``gpu`` where CUDA is available, else ``cpu``."""
    if os.environ.get(PRESET_ENV):
        return os.environ[PRESET_ENV]
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_preset(name: str | None = None, **train_overrides) -> Preset:
    """The preset called ``name`` (``None``: :func:`default_preset_name`), optionally with some
    training settings changed, e.g. ``get_preset("cpu", max_steps=200)``."""
    name = name or default_preset_name()
    if name not in PRESETS:
        raise SlmError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    preset = PRESETS[name]
    settings = [f.name for f in fields(TrainConfig)]
    unknown = [key for key in train_overrides if key not in settings]
    if unknown:
        raise SlmError(f"{', '.join(unknown)} is not a training setting (TrainConfig): they are {', '.join(settings)}")
    if train_overrides:
        preset = replace(preset, train=replace(preset.train, **train_overrides))
    return preset
