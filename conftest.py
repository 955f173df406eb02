"""pytest's settings for the whole repository: how nbval compares a notebook's figures (tests/nbval_figures.py)."""

pytest_plugins = ["tests.nbval_figures"]
