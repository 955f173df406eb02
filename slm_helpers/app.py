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

import argparse
from collections.abc import Iterator
from pathlib import Path

from slm_helpers.about import about_model
from slm_helpers.checkpoint import load_model
from slm_helpers.errors import SlmError
from slm_helpers.generate.sampling import MAX_NEW_TOKENS, TEMPERATURE, TOP_K, check_sampling, stream_story
from slm_helpers.instruct import FEATURES, request_prompt

HOW_TO_INSTALL = "pip install -e .[app] (or: pip install gradio)"
MAX_TEMPERATURE = 2.0
LONGEST = 1_000  # new tokens at most: past the context the window slides, each token costs a whole pass


def import_gradio():
    """``gradio``, or an error that says how to install it (an optional dependency)."""
    try:
        import gradio
    except ImportError:
        raise SlmError(f"the story box needs the gradio package: {HOW_TO_INSTALL}") from None
    return gradio


def story_settings(prompt: str, words: str, features: list[str], temperature: float, top_k: float, top_p: float,
                   max_new_tokens: float, seed: float | None) -> dict:
    """The page's fields as :func:`stream_story`'s arguments, checked: a :class:`SlmError`
    that says what to change. ``top_p`` 1 means no limit; no ``seed`` means a new story each time."""
    words = (words or "").strip()
    if words or features:
        if prompt.strip():
            raise SlmError("give a beginning, or words (and features) for a request, not both: empty one of them")
        if not words:
            raise SlmError("features go with words: say which words the story must use")
        prompt = request_prompt(words, features or ())
    elif not prompt.strip():
        raise SlmError("type how the story begins, e.g. 'Once upon a time' (or words for a fine-tuned model)")
    if temperature is None or not 0 <= temperature <= MAX_TEMPERATURE:
        raise SlmError(f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE:g}, not {temperature}")
    for name, value in (("top-k", top_k), ("max new tokens", max_new_tokens)):
        if value is None or value != int(value) or value < 1:
            raise SlmError(f"{name} must be a whole number >= 1, not {value}")
    if seed is not None and (seed != int(seed) or seed < 0):
        raise SlmError(f"the seed must be a whole number >= 0 (or empty for a new story each time), not {seed}")
    settings = dict(prompt=prompt, temperature=float(temperature), top_k=int(top_k),
                    top_p=None if top_p is None or top_p >= 1 else float(top_p),
                    max_new_tokens=min(int(max_new_tokens), LONGEST), seed=None if seed is None else int(seed))
    check_sampling(settings["temperature"], settings["top_k"], settings["top_p"], settings["max_new_tokens"])
    return settings


def story_box(checkpoint: str | Path, device: str = "cpu"):
    """The Gradio app (a ``gradio.Blocks``) over the model in ``checkpoint``; ``.launch()`` it."""
    gr = import_gradio()
    model, tokenizer = load_model(checkpoint, device)
    about = about_model(checkpoint, model, tokenizer)

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


def main(argv: list[str] | None = None) -> int:
    from slm_helpers.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m slm_helpers.app", description="A story box in the browser.")
    parser.add_argument("--checkpoint", required=True, help="a run's best_model_params.pt (or checkpoint.pt)")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let other machines of the network in")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--share", action="store_true", help="a public link for 72 hours, through Gradio's servers")
    args: argparse.Namespace = parser.parse_args(argv)
    box = story_box(args.checkpoint, args.device)
    box.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    import sys

    from slm_helpers.cli import run

    sys.exit(run(main, on_interrupt="the story box is closed"))
