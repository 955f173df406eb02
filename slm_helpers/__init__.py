"""Helpers for the slm-from-scratch notebooks.

One module per concept, in the order the notebooks teach them:

* :mod:`slm_helpers.tokenizer`  - the GPT-2 BPE tokenizer, online or offline (notebook 01)
* :mod:`slm_helpers.stories`    - a built-in generator of TinyStories-style stories
* :mod:`slm_helpers.data`       - stories to uint16 memmaps, and random batches (notebook 01)
* :mod:`slm_helpers.model`      - attention and the GPT (notebooks 02 and 03)
* :mod:`slm_helpers.device`     - where to train and in which precision (notebook 04)
* :mod:`slm_helpers.optim`      - settings, AdamW, warmup + cosine, unscale-clip-step (notebook 04)
* :mod:`slm_helpers.train`      - the training loop (notebook 04)
* :mod:`slm_helpers.checkpoint` - a run's files, written atomically and read safely
* :mod:`slm_helpers.presets`    - named sizes (ci, cpu, gpu) for data, model and training
* :mod:`slm_helpers.plots`      - loss curves (notebook 05)
* :mod:`slm_helpers.generate`   - sampling, the KV cache, streaming (notebook 06)
* :mod:`slm_helpers.exercises`  - checks for the notebooks' exercises
* :mod:`slm_helpers.cli`        - what the three command-line tools share: one-line errors
"""

__version__ = "0.1.0"

# Where Colab clones the series from. A fork changes it here, then runs
# `python tests/refresh_notebooks.py --links` to write it into every notebook's setup cell and
# into README.md's "Open in Colab" links (tests/test_notebooks.py checks that they agree).
REPOSITORY = "https://github.com/slm-from-scratch/slm-from-scratch"
