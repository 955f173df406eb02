"""The story box: a trained model in the browser, to play with and to show.

A prompt, the sampling controls with the series' defaults, and, for a model fine-tuned on
requests (notebook 08), the words and features to ask for; the story appears as it is written
(:func:`~slm_helpers.generate.stream_story`, the KV cache on), under the model's own
description (:mod:`slm_helpers.about`: its size, pieces, data and bits per byte).

In a notebook (Jupyter, Colab) it opens inline::

    from slm_helpers.app import story_box
    story_box("runs/cpu/best_model_params.pt").launch()

From a terminal, at http://127.0.0.1:7860::

    python -m slm_helpers.app --checkpoint runs/cpu/best_model_params.pt

It is Gradio's (``pip install -e .[app]``). Bad input (an empty prompt, a temperature out of
range, words a request cannot use) is said in one line in the page; nothing is generated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from slm_helpers.about import open_model
from slm_helpers.errors import SlmError, check_int, optional_import
from slm_helpers.generate.sampling import MAX_NEW_TOKENS, TEMPERATURE, TOP_K, check_sampling, stream_story
from slm_helpers.instruct import FEATURES, story_prompt

MAX_TEMPERATURE = 2.0
LONGEST = 1_000  # new tokens at most: past the context the window slides, each token costs a whole pass


def import_gradio():
    """``gradio``, or an error that says how to install it (an optional dependency)."""
    return optional_import("gradio", "the story box", "app")


def story_settings(prompt: str, words: str, features: list[str], temperature: float, top_k: float, top_p: float,
                   max_new_tokens: float, seed: float | None) -> dict:
    """The page's fields as :func:`stream_story`'s arguments, checked: a :class:`SlmError`
    that says what to change. ``top_p`` 1 means no limit; no ``seed`` means a new story each time.
    The page's numbers arrive as floats: the whole-number settings must be whole."""
    prompt = story_prompt(prompt if prompt.strip() else "", (words or "").strip() or None, features or None)
    if not prompt.strip():
        raise SlmError("type how the story begins, e.g. 'Once upon a time' (or words for a fine-tuned model)")
    if temperature is None or not 0 <= temperature <= MAX_TEMPERATURE:  # the slider's ends; the rest: check_sampling
        raise SlmError(f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE:g}, not {temperature}")
    settings = dict(prompt=prompt, temperature=temperature, top_k=_whole(top_k),
                    top_p=None if top_p is None or top_p >= 1 else top_p,
                    max_new_tokens=_whole(max_new_tokens), seed=_whole(seed))
    check_sampling(settings["temperature"], settings["top_k"], settings["top_p"], settings["max_new_tokens"])
    if settings["seed"] is not None:
        check_int("seed", settings["seed"], 0, alternative=" (or empty for a new story each time)")
    settings["max_new_tokens"] = min(settings["max_new_tokens"], LONGEST)
    return settings


def _whole(value):
    """A whole number the page sends as a float (2.0) as an int, for the checks that follow; any
    other value as it is, for them to refuse."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def story_box(checkpoint: str | Path, device: str = "cpu"):
    """The Gradio app (a ``gradio.Blocks``) over the model in ``checkpoint``; ``.launch()`` it."""
    gr = import_gradio()
    model, tokenizer, about = open_model(checkpoint, device)

    def write(prompt, words, features, temperature, top_k, top_p, max_new_tokens, seed) -> Iterator[str]:
        try:
            settings = story_settings(prompt, words, features, temperature, top_k, top_p, max_new_tokens, seed)
        except SlmError as error:
            raise gr.Error(str(error), print_exception=False) from None
        prompt = settings.pop("prompt")
        story = prompt
        yield story
        for piece in stream_story(model, tokenizer, prompt, log=lambda line: None, **settings):
            story += piece
            yield story

    with gr.Blocks(title="Story box") as box:
        gr.Markdown("## Story box\n" + "  \n".join(about.lines()))
        prompt = gr.Textbox(label="How the story begins", value="" if about.reads_requests else "Once upon a time",
                            lines=2, elem_id="prompt")
        with gr.Accordion("Ask for a story (a model fine-tuned on requests, notebook 08)", open=about.reads_requests):
            words = gr.Textbox(label="Words it must use (then leave the beginning empty)",
                               placeholder="dog, ball, happy", elem_id="words")
            features = gr.CheckboxGroup(list(FEATURES), label="Features")
        with gr.Row():
            temperature = gr.Slider(0, MAX_TEMPERATURE, value=TEMPERATURE, step=0.05, label="temperature (0 = greedy)")
            top_k = gr.Slider(1, model.config.vocab_size, value=min(TOP_K, model.config.vocab_size), step=1,
                              label="top-k")
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p (1 = no limit)")
        with gr.Row():
            max_new_tokens = gr.Slider(1, LONGEST, value=MAX_NEW_TOKENS, step=1, label="new tokens at most")
            seed = gr.Number(value=None, precision=0, label="seed (empty: a new story each time)", elem_id="seed")
        button = gr.Button("Write a story", variant="primary", elem_id="write")
        story = gr.Textbox(label="The story", lines=12, interactive=False, elem_id="story")
        button.click(write, [prompt, words, features, temperature, top_k, top_p, max_new_tokens, seed], story)
    return box


if __name__ == "__main__":
    import sys

    from slm_helpers.cli import app_command

    sys.exit(app_command())
