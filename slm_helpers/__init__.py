"""Helpers for the slm-from-scratch notebooks: one module per concept, lower layers first.

* :mod:`~slm_helpers.errors`, :mod:`~slm_helpers.folders` - one-line errors; files written
  whole, a folder held by one process
* :mod:`~slm_helpers.vocab`, :mod:`~slm_helpers.tokenizer` - the ``Tokenizer`` interface that
  travels with data and weights, and GPT-2's BPE with all its ids or a compact vocabulary's
  (notebook 01); :mod:`~slm_helpers.trained_tokenizer` - a BPE learned from the stories (09)
* :mod:`~slm_helpers.stories`, :mod:`~slm_helpers.data` - stories (built-in, the hub, files)
  into token files, and a dataset opened once that hands out batches (notebook 01)
* :mod:`~slm_helpers.model` - attention and the GPT, and its FLOPs (notebooks 02 and 03)
* :mod:`~slm_helpers.device`, :mod:`~slm_helpers.optim`, :mod:`~slm_helpers.processes` -
  where and in which precision; AdamW, the schedule, the optimizer step; torchrun (notebook 04)
* :mod:`~slm_helpers.evaluate`, :mod:`~slm_helpers.checkpoint`, :mod:`~slm_helpers.plan`,
  :mod:`~slm_helpers.train` - losses and samples; a run's files; what a run will take; the
  loop (notebook 04)
* :mod:`~slm_helpers.modern`, :mod:`~slm_helpers.muon` - the modern recipe's pieces: rotary,
  RMSNorm, ReLU² / SwiGLU, QK-norm, an untied head; Muon (notebook 09)
* :mod:`~slm_helpers.presets` - named sizes (ci, cpu, modern, gpu), as data
* :mod:`~slm_helpers.plots`, :mod:`~slm_helpers.generate`, :mod:`~slm_helpers.speed` - loss
  curves (05), writing stories (06), measuring (07)
* :mod:`~slm_helpers.exercises` - checks for the notebooks' exercises
* :mod:`~slm_helpers.cli` - the three commands, above the library
"""

__version__ = "0.1.0"

# Where Colab clones the series from. A fork changes it here, then runs
# `python tests/refresh_notebooks.py --links` to write it into every notebook's setup cell and
# into README.md's "Open in Colab" links (tests/test_notebooks.py checks that they agree).
REPOSITORY = "https://github.com/slm-from-scratch/slm-from-scratch"
