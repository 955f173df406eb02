"""How nbval compares a notebook's figures: the words exactly, the numbers within a stated tolerance.

fp32 results differ in their last bits from one CPU to another (AVX2 or AVX-512 kernels, another
BLAS on Apple silicon, another number of threads), and 200 training steps grow that difference into
printed digits: a validation loss stored as 5.12 reads 5.11 on another machine. nbval compares text
exactly, so a cell whose figures follow from training states how close they must stay, with a tag:

    nbval-figures-within-2%

In such a cell every number may move by 2% of the stored value plus one unit of its last printed
digit (5.12 may read 5.11 to 5.23; 41% may read 40% to 42%), and everything else, the words, the
spacing, the order and the count of the numbers, must be exactly as stored. A cell without the tag
is compared exactly, as nbval does. A figure that moves further, or a word that changes, fails.

Loaded for the whole repository by the root ``conftest.py``; ``tests/test_nbval_figures.py`` shows
both outcomes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

TAG = re.compile(r"^nbval-figures-within-(\d+(?:\.\d+)?)%$")
# A figure: an optional sign, digits (with thousands commas), an optional fraction and exponent. Not
# part of a word: the 32 of fp32, the 2 of GPT-2 and the 0x of an address are words.
NUMBER = re.compile(r"(?<![\w.])(?<!\w[-+])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\d,]*\.?\d)")


def tolerance_of(tags: Iterable[str]) -> float | None:
    """The relative tolerance a cell's tags state (0.02 for ``nbval-figures-within-2%``), or None."""
    for tag in tags:
        match = TAG.match(tag)
        if match:
            return float(match.group(1)) / 100
    return None


def _unit(figure: str) -> float:
    """One unit of a figure's last printed digit: 0.01 for 5.12, 1 for 41, 1e-06 for 7.6e-06."""
    mantissa, _, exponent = figure.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _value(figure: str) -> float:
    return float(figure.replace(",", ""))


def figures_agree(stored: str, new: str, tolerance: float) -> bool:
    """True if ``new`` says what ``stored`` says: the same text between the numbers, and each number
    within ``tolerance`` of the stored one (relative) plus one unit of its last printed digit."""
    if NUMBER.sub("#", stored) != NUMBER.sub("#", new):
        return False
    pairs = zip(NUMBER.findall(stored), NUMBER.findall(new))
    return all(math.isclose(_value(b), _value(a), rel_tol=0, abs_tol=tolerance * abs(_value(a)) + _unit(a) * 1.0001)
               for a, b in pairs)


def _texts(output) -> list[tuple[object, str, str]]:
    """(the node holding it, its key, what names it) for each text of an output that nbval compares."""
    if output.get("output_type") == "stream":
        return [(output, "text", output.get("name", ""))]
    data = output.get("data", {})
    return [(data, "text/plain", "text/plain")] if "text/plain" in data else []


def accept_close_figures(test: list, ref: list, tolerance: float, sanitize) -> list:
    """``test`` with each text whose figures agree with the stored one's replaced by the stored text,
    so nbval's exact comparison then passes it; any other text is left to fail there. Outputs are
    paired in order, streams by name, as nbval pairs them."""
    import copy

    test = copy.deepcopy(test)
    stored_texts: dict[str, list[str]] = {}
    for stored in ref:
        for holder, key, name in _texts(stored):
            stored_texts.setdefault(name, []).append(holder[key])
    for new in test:
        for holder, key, name in _texts(new):
            queue = stored_texts.get(name)
            if queue:
                stored = queue.pop(0)
                if figures_agree(sanitize(stored), sanitize(holder[key]), tolerance):
                    holder[key] = stored
    return test


def pytest_collection_modifyitems(items) -> None:
    """Give each notebook cell tagged ``nbval-figures-within-N%`` the tolerant comparison."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebooks are collected
        return
    for item in items:
        if not isinstance(item, IPyNbCell):
            continue
        tolerance = tolerance_of(item.cell.get("metadata", {}).get("tags", []))
        if tolerance is None:
            continue
        exact = item.compare_outputs

        def compare_outputs(test, ref, skip_compare=None, exact=exact, tolerance=tolerance, item=item):
            return exact(accept_close_figures(test, ref, tolerance, item.sanitize), ref, skip_compare)

        item.compare_outputs = compare_outputs
