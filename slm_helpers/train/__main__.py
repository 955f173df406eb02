"""``python -m slm_helpers.train``: the command lives in :mod:`slm_helpers.cli`."""

import sys

from slm_helpers.cli import train_command

sys.exit(train_command())
