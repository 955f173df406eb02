"""Helpers for the slm-from-scratch notebooks.

One module per concept, in the order the notebooks teach them:

* :mod:`slm_helpers.tokenizer` - the GPT-2 BPE tokenizer, online or offline (notebook 01)
* :mod:`slm_helpers.stories`   - a built-in generator of TinyStories-style stories
* :mod:`slm_helpers.data`      - stories to uint16 memmaps, and random batches (notebook 01)
* :mod:`slm_helpers.presets`   - named sizes (ci, cpu, gpu) for data, model and training
"""

__version__ = "0.1.0"
