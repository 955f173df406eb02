"""Every figure the notebooks' prose states is shown to the learner: printed by a cell of the
same notebook (a saved output), written in its code (a setting), or quoted from a results file
the prose names (``results/....txt`` or ``.json``). A figure may be a rounding of what is shown
(0.92 for 0.919; 19.3M for 19,298,688). The few that are none of these are listed below, each
with its reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# A figure: a number with a thousands comma or a decimal point, or of three digits or more.
FIGURE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d{3,})(?!\d|,\d)(\s*(?:M\b|million\b))?")
SHOWN = re.compile(r"\d[\d,]*(?:\.\d+)?")

CITATION = "a citation's year or identifier"
EXCEPTIONS: dict[str, dict[str, str]] = {
    "01_tokenize_to_memmap": {
        "100,277": "GPT-4's tokenizer (tiktoken's cl100k_base): a published size, for contrast",
        "1994": CITATION,
        "2.1": "TinyStories' train split (2.1M stories, its dataset card): only the gpu preset downloads it",
        "470": "TinyStories' train split in GPT-2 tokens (~470M): only the gpu preset prepares it",
    },
    "02_attention": {"2022": CITATION},
    "03_gpt_model": {
        "10.7": "the original write-up's own figure, quoted (the next cell prints the count it stands for)",
        "128": "the original's context, a setting of GPTConfig() (the next cell prints its count)",
        "2020": CITATION,
    },
    "04b_precision_and_bugs": {
        "1.7": "arithmetic of the sentence itself: 1 + two thirds",
        "2018": CITATION,
        "19,000": "the original's schedule (notes on the original run): 20,000 micro-batches less 1,000 of warmup",
        "2017": CITATION,
        "65,536": "GradScaler's documented initial scale (2**16)",
    },
    "05_loss_curves": {
        "0.75": "the bigram table's discount, a setting of slm_helpers/evaluate.py (bigram_loss)",
        "131,072": "the original's tokens per step: 32 x 32 x 128, printed in notebook 04b",
        "32,000": "llama2.c's vocabulary, a published figure quoted with its source",
        "4.0": "an assumption, labelled as one (bytes per Llama-2 token)",
        "3.3": "the original's first learning rate (1e-4 over 30, its LinearLR start): notes on the original run",
        "625": "the original's optimizer steps (20,000 micro-batches / 32), worked out in notebook 04b",
        "5,000": "the gpu preset's steps, a setting of slm_helpers/presets.py, printed in notebook 04",
        "492": "the gpu-long preset's tokens, a setting of slm_helpers/presets.py, printed in notebook 04",
    },
    "06_inference": {"512": "notebook 07's longest context, measured there", "2020": CITATION,
                     "205,000": "the ci run's 204,800 tokens, rounded (notebooks 04 and 05 print them)"},
    "07_speed": {"768": "GPT-2 small's width, a published size, for contrast",
                 "384": "the gpu preset's width: a given of exercise 1"},
    "08_stories_on_request": {"2305.07759": CITATION, "2023": CITATION},
    "09_modern_recipe": {
        "2019": CITATION, "2021": CITATION, "2024": CITATION,
        "256": "the number of byte values, 2**8",
        "512": "llama2.c's smallest TinyStories vocabulary, a published size quoted with its source",
        "1,000": "the spread the cell sets up and prints: a largest singular value of 1.000, a smallest of 0.0010",
    },
    "09b_modern_recipe_real_runs": {
        "12,898": "the shared sample's training stories, as its README states (the results file holds the run's split)",
        "500": "the shared sample's validation stories, as its README states",
    },
}


def _parts(path: Path) -> tuple[str, str]:
    """The notebook's prose (code spans and links removed), and all that it shows."""
    cells = json.loads(path.read_text())["cells"]
    prose, shown = [], []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            prose.append(source)
            continue
        shown.append(source.replace("_", ","))  # a setting written in code (470_000_000)
        for output in cell.get("outputs", []):
            shown.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
    text = re.sub(r"`[^`]*`", " ", "\n".join(prose))
    text = re.sub(r"\]\([^)]*\)", "]", text)
    for name in set(re.findall(r"results/([\w.-]+\.(?:txt|json))", "\n".join(prose))):
        shown.append((NOTEBOOKS / "results" / name).read_text())
    return text, "\n".join(shown)


def _is_shown(figure: str, millions: bool, shown: set[str]) -> bool:
    value = figure.replace(",", "")
    if value in shown:
        return True
    places = len(value.partition(".")[2])
    for number in shown:
        x = float(number)
        if millions and round(x / 1e6, places) == float(value):
            return True
        finer = "." in number and len(number.partition(".")[2]) > places
        if "." in value and finer and round(x, places) == float(value):
            return True
    return False


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("0*.ipynb")), ids=lambda p: p.stem)
def test_every_figure_in_the_prose_is_shown(path):
    text, shown_text = _parts(path)
    shown = {n.replace(",", "") for n in SHOWN.findall(shown_text)}
    allowed = EXCEPTIONS.get(path.stem, {})
    unshown = sorted({figure for figure, millions in FIGURE.findall(text)
                      if figure not in allowed and not _is_shown(figure, bool(millions.strip()), shown)})
    assert not unshown, (f"{path.name}: the prose states {unshown}, which no cell prints, no code sets and no named "
                         "results file holds: print it, or list it in EXCEPTIONS with its reason")
    stale = sorted(figure for figure in allowed if figure not in {f for f, _ in FIGURE.findall(text)})
    assert not stale, f"{path.name}: EXCEPTIONS lists {stale}, which the prose no longer states"
