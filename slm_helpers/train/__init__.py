"""Training: the loop written out by hand (:mod:`slm_helpers.train.loop`, over a
:class:`~slm_helpers.train.run.Run`), notebook 04.

``python -m slm_helpers.train --help`` trains from a terminal (the command itself lives in
:mod:`slm_helpers.cli`, above the library).
"""

from slm_helpers.train.loop import ensure_trained, train
from slm_helpers.train.run import TrainingDiverged, TrainResult, accumulate_gradients

__all__ = ["TrainResult", "TrainingDiverged", "accumulate_gradients", "ensure_trained", "train"]
