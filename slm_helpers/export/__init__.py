"""Share a trained model: a folder that Hugging Face ``transformers`` loads as its own.

``python -m slm_helpers.export --checkpoint runs/cpu/best_model_params.pt --out-dir exported/cpu``
writes

* the model (``config.json``, ``model.safetensors``): ``GPT2LMHeadModel`` for the GPT-2
  layout, ``LlamaForCausalLM`` for the modern pieces LLaMA has (:mod:`slm_helpers.export.models`);
* its tokenizer (``tokenizer.json`` and its config), the very ids it was trained on: GPT-2's,
  a compact vocabulary's or the one learned from the stories
  (:meth:`~slm_helpers.tokenizer.Tokenizer.to_hf`);
* ``generation_config.json``: the series' sampling settings, ``<|endoftext|>`` as the end;
* ``README.md``, a model card: the model, its data, its steps and bits per byte, how it was made.

Then anyone can write a story with it::

    from transformers import pipeline
    print(pipeline("text-generation", model="exported/cpu")("Once upon a time")[0]["generated_text"])

``transformers`` is optional (``pip install -e .[export]``). The folder is written beside its
place and moved in whole, so an interrupted export leaves nothing half-written, and an existing
folder is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from slm_helpers.about import About, open_model
from slm_helpers.errors import SlmError
from slm_helpers.export.models import import_transformers, layout, to_hf_gpt2, to_hf_llama, to_hf_model
from slm_helpers.generate.sampling import TEMPERATURE, TOP_K, TOP_P
from slm_helpers.model import GPT
from slm_helpers.tokenizer import EOT_TEXT, UNKNOWN_TEXT, Tokenizer

__all__ = ["export_model", "layout", "to_hf_gpt2", "to_hf_llama", "to_hf_model", "to_hf_tokenizer"]


def to_hf_tokenizer(tokenizer: Tokenizer, block_size: int):
    """``tokenizer`` as a ``transformers`` tokenizer (``PreTrainedTokenizerFast``) with the
    same ids, ``<|endoftext|>`` as its end (and start) of text, ``<unk>`` if it has one."""
    transformers = import_transformers()
    unknown = {"unk_token": UNKNOWN_TEXT} if tokenizer.unknown_id is not None else {}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer.to_hf(), eos_token=EOT_TEXT,
                                                bos_token=EOT_TEXT, pad_token=EOT_TEXT, model_max_length=block_size,
                                                **unknown)


def generation_config(model: GPT, tokenizer: Tokenizer, n_vocab: int):
    """The series' sampling settings (``python -m slm_helpers.generate``'s defaults), a story
    that ends where the model's context does (``max_length``: prompt and story together, since
    GPT-2's layout has no position beyond it, where our generator slides its window instead);
    ids the tokenizer knows beyond the model's (a compact vocabulary's left-out tokens) are
    never written."""
    transformers = import_transformers()
    return transformers.GenerationConfig(
        do_sample=True, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P, max_length=model.config.block_size,
        eos_token_id=tokenizer.eot_token, bos_token_id=tokenizer.eot_token, pad_token_id=tokenizer.eot_token,
        suppress_tokens=list(range(model.config.vocab_size, n_vocab)) or None)


def export_model(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False, log=print) -> Path:
    """Write the folder described above for the weights in ``checkpoint`` into ``out_dir``.
    Everything that can be refused (a missing or damaged file, a model no transformers class
    holds, a folder in the way) is refused before anything is written."""
    transformers = import_transformers()
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    model, tokenizer, about = open_model(checkpoint)
    if out_dir.exists() and not out_dir.is_dir():
        raise SlmError(f"{out_dir} is a file, not a folder: choose another --out-dir")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise SlmError(f"{out_dir} already holds files: choose another --out-dir, or replace it with --overwrite")
    hf_tokenizer = to_hf_tokenizer(tokenizer, model.config.block_size)
    n_vocab = len(hf_tokenizer)
    hf_model = to_hf_model(model, n_vocab=n_vocab, unknown_id=tokenizer.unknown_id)  # or a refusal
    kind = type(hf_model).__name__
    hf_model.generation_config = generation_config(model, tokenizer, n_vocab)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as work:
        new = Path(work) / "export"
        hf_model.save_pretrained(new)
        hf_tokenizer.save_pretrained(new)
        (new / "README.md").write_text(model_card(checkpoint, about, model, tokenizer, kind, n_vocab),
                                       encoding="utf-8")
        old = Path(work) / "old"
        if out_dir.exists():
            out_dir.rename(old)  # kept until the new folder is in place
        new.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    log(f"wrote {out_dir}: {kind} with {model.num_params():,} parameters and its tokenizer "
        f"({tokenizer.name}); transformers {transformers.__version__} loads it with from_pretrained({str(out_dir)!r})")
    return out_dir


def model_card(checkpoint: Path, about: About, model: GPT, tokenizer: Tokenizer, kind: str, n_vocab: int) -> str:
    """README.md for the exported folder: what the model is, what it learned from and how well."""
    c = model.config
    unknown = (f"\nThe model knows {c.vocab_size:,} ids: GPT-2's {c.vocab_size - 1:,} most used in its stories and "
               f"`<unk>` (id {tokenizer.unknown_id}) for all others. The tokenizer still writes every GPT-2 token: a "
               f"left-out one has an id of its own from {c.vocab_size:,} on, which the model reads as `<unk>` and "
               "never writes (the generation config suppresses them).\n" if n_vocab > c.vocab_size else "")
    front = "---\nlibrary_name: transformers\npipeline_tag: text-generation\n" + \
        ("datasets:\n- roneneldan/TinyStories\n" if "tinystories" in about.source.lower() else "") + \
        "tags:\n- slm-from-scratch\n- tinystories\n---\n"
    tuned = f"| fine-tuned from | {about.fine_tuned_from} |\n" if about.fine_tuned_from else ""
    no_position_beyond = (" and has no position beyond them (a longer `max_new_tokens` fails)"
                          if kind == "GPT2LMHeadModel" else "")
    return f"""{front}
# A small story model from slm-from-scratch

A GPT of {about.parameters:,} parameters ({about.shape}) trained from scratch on children's
stories with the notebooks and `slm_helpers` of the slm-from-scratch series, exported as
`{kind}`.

| | |
|---|---|
| pieces | {about.pieces} |
| tokenizer | {about.tokenizer} |
| data | {about.data} |
{tuned}| steps | {about.step:,} |
| validation | {about.validation} |
{unknown}
## Use it

```python
from transformers import pipeline
story = pipeline("text-generation", model="path/to/this/folder")
print(story("Once upon a time")[0]["generated_text"])
```

The generation config holds the series' settings: temperature {TEMPERATURE}, top-k {TOP_K}, ending
at `{EOT_TEXT}` or at {c.block_size} tokens, prompt and story together: the model has seen no
longer sequences{no_position_beyond}.

## How it was made

Trained with `python -m slm_helpers.train` (or notebook 04) and exported with
`python -m slm_helpers.export --checkpoint {checkpoint.name} --out-dir ...`; its logits equal the
original's within 1e-5 (the export's tests check each layout and tokenizer). A model this small
writes simple stories in the style of TinyStories, with slips of grammar and logic; it knows
nothing else.
"""
