"""Stories in, uint16 token files out; random training windows back (notebook 01).

* :mod:`~slm_helpers.data.sources`: where stories come from (the built-in generator,
  TinyStories on the hub, local files);
* :mod:`~slm_helpers.data.prepare`: tokenizing them in parallel into a dataset folder, and a
  preset's dataset on demand;
* :mod:`~slm_helpers.data.dataset`: a prepared dataset opened once (:class:`TokenDataset`),
  which hands out batches.

``python -m slm_helpers.data --help`` does the preparing from a terminal.
"""

from slm_helpers.data.dataset import (
    META_FILE,
    SPLITS,
    TOKEN_DTYPE,
    VOCAB_FILE,
    DatasetInfo,
    SplitInfo,
    TokenDataset,
    get_batch,
    load_tokens,
    read_info,
)
from slm_helpers.data.prepare import ensure_dataset, prepare_dataset, preset_dataset
from slm_helpers.data.sources import TINYSTORIES, HubUnreachable, hub_unreachable_reason, open_source
from slm_helpers.errors import DataError

__all__ = [
    "META_FILE",
    "SPLITS",
    "TINYSTORIES",
    "TOKEN_DTYPE",
    "VOCAB_FILE",
    "DataError",
    "DatasetInfo",
    "HubUnreachable",
    "SplitInfo",
    "TokenDataset",
    "ensure_dataset",
    "get_batch",
    "hub_unreachable_reason",
    "load_tokens",
    "open_source",
    "prepare_dataset",
    "preset_dataset",
    "read_info",
]
