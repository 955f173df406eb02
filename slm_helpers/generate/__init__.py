"""Writing stories with a trained model (:mod:`slm_helpers.generate.sampling`), notebook 06.

``python -m slm_helpers.generate --help`` writes one from a terminal (the command itself
lives in :mod:`slm_helpers.cli`, above the library).
"""

from slm_helpers.checkpoint import load_model
from slm_helpers.errors import CheckpointError, TokenizerError
from slm_helpers.generate.sampling import (
    check_sampling,
    check_tokenizer,
    generate_ids,
    next_token_distribution,
    prepare_prompt,
    stream_story,
    write_story,
)

__all__ = ["CheckpointError", "TokenizerError", "check_sampling", "check_tokenizer", "generate_ids", "load_model",
           "next_token_distribution", "prepare_prompt", "stream_story", "write_story"]
