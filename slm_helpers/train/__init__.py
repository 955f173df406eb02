"""Training: the loop written out by hand (:mod:`slm_helpers.train.loop`), notebook 04.

``python -m slm_helpers.train --help`` trains from a terminal (the command itself lives in
:mod:`slm_helpers.cli`, above the library).
"""

from slm_helpers.train.loop import TrainingDiverged, TrainResult, accumulate_gradients, ensure_trained, train

__all__ = ["TrainResult", "TrainingDiverged", "accumulate_gradients", "ensure_trained", "train"]
