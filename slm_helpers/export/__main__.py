"""``python -m slm_helpers.export``: the command lives in :mod:`slm_helpers.cli`."""

import sys

from slm_helpers.cli import export_command

sys.exit(export_command())
