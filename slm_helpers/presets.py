"""Named sizes for the whole series: which data, how big a model, how long to train.

* ``ci``  - seconds on 2 CPU cores: what CI runs, and what the stored notebook outputs show.
  It always trains on the CPU in fp32, whatever the machine offers, so its numbers are the
  same on every machine (a GPU, or a CPU with native bf16, would print other losses).
* ``cpu`` - a laptop run of roughly 10-20 minutes on the built-in synthetic stories.
* ``gpu`` - the original run: TinyStories, 6 layers x 384 wide, 20,000 optimizer steps,
  with its four bugs fixed (see notebook 04).

Every notebook picks one with a ``PRESET`` variable at its top; ``None`` means the
environment variable ``SLM_PRESET`` if set, else ``gpu`` where CUDA is available and ``cpu``
otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from slm_helpers.model import GPTConfig
from slm_helpers.train import TrainConfig

PRESET_ENV = "SLM_PRESET"
DATA_DIR_ENV = "SLM_DATA_DIR"
RUNS_DIR_ENV = "SLM_RUNS_DIR"


def project_root() -> Path:
    """The repository folder (holding ``data/`` and ``runs/``): the package's parent when
    installed from a clone with ``pip install -e .``, else the current folder."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data_source: str  # "synthetic", "tinystories" or a local path
    data_options: dict = field(default_factory=dict)
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def data_dir(self) -> Path:
        """Where this preset's dataset lives (``$SLM_DATA_DIR`` or ``data/`` in the repository)."""
        root = Path(os.environ.get(DATA_DIR_ENV) or project_root() / "data")
        suffix = f"-{self.name}" if self.data_source == "synthetic" else ""
        return root / f"{Path(self.data_source).name}{suffix}"

    @property
    def out_dir(self) -> Path:
        """Where training writes weights, checkpoint and history (``$SLM_RUNS_DIR`` or ``runs/``)."""
        return Path(os.environ.get(RUNS_DIR_ENV) or project_root() / "runs") / self.name


PRESETS: dict[str, Preset] = {
    "ci": Preset(
        name="ci",
        description="seconds on 2 CPU cores; shows the loss falling, not good stories",
        data_source="synthetic",
        data_options=dict(train_stories=2_000, validation_stories=200, seed=0),
        model=GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64, dropout=0.0),
        train=TrainConfig(
            batch_size=8, grad_accum_steps=2, max_steps=40, warmup_steps=5, learning_rate=3e-3, min_lr=3e-4,
            eval_interval=10, eval_batches=4, weight_decay=0.1,
            device="cpu", dtype="float32",  # reproducible everywhere: the saved outputs are compared by nbval
        ),
    ),
    "cpu": Preset(
        name="cpu",
        description="a 10-20 minute laptop run on synthetic stories that ends with readable stories",
        data_source="synthetic",
        data_options=dict(train_stories=20_000, validation_stories=1_000, seed=0),
        model=GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        train=TrainConfig(
            batch_size=16, grad_accum_steps=1, max_steps=500, warmup_steps=50, learning_rate=2e-3, min_lr=2e-4,
            eval_interval=50, eval_batches=10, weight_decay=0.1,
        ),
    ),
    "gpu": Preset(
        name="gpu",
        description="the original run: TinyStories, 6x384, 20,000 optimizer steps of 32x32x128 tokens",
        data_source="tinystories",
        data_options=dict(max_stories=None),
        model=GPTConfig(block_size=128, n_layer=6, n_head=6, n_embd=384, dropout=0.1),
        train=TrainConfig(
            batch_size=32, grad_accum_steps=32, max_steps=20_000, warmup_steps=1_000, learning_rate=1e-4,
            min_lr=1e-5,  # the original's 5e-4 sat above the peak: bug 1
            eval_interval=500, eval_batches=100, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-9, grad_clip=0.5,
        ),
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
        raise ValueError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    preset = PRESETS[name]
    if train_overrides:
        preset = replace(preset, train=replace(preset.train, **train_overrides))
    return preset
