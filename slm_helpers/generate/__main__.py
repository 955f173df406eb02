"""``python -m slm_helpers.generate``: the command lives in :mod:`slm_helpers.cli`."""

import sys

from slm_helpers.cli import generate_command

sys.exit(generate_command())
