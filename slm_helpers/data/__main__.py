"""``python -m slm_helpers.data``: the command lives in :mod:`slm_helpers.cli`."""

import sys

from slm_helpers.cli import data_command

sys.exit(data_command())
