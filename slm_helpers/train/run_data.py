"""What a run trains on: its batches (a preset's dataset, a dataset folder or object, or request
records to fine-tune on), and the model configuration that reads their ids."""

from __future__ import annotations

from slm_helpers.data import preset_dataset
from slm_helpers.errors import SlmError
from slm_helpers.evaluate import batches_of
from slm_helpers.instruct import RequestData, is_requests_folder
from slm_helpers.model import GPTConfig
from slm_helpers.tokenizer import GPT2


def open_run_data(preset, data_dir, base, log):
    """The batch source: the preset's dataset, a dataset folder or object, or (fine-tuning a
    model, ``base``) a folder of request records in that model's tokenizer."""
    if is_requests_folder(data_dir):
        if base is None:
            raise SlmError(f"{data_dir} holds request records, which fine-tune a trained model: give init_from, "
                           "e.g. init_from='runs/cpu/best_model_params.pt' (--init-from)")
        return RequestData.open(data_dir, base[1])
    data = preset_dataset(preset, progress=False, log=log) if data_dir is None else batches_of(data_dir)
    if base is not None and data.tokenizer.name != base[0].config.tokenizer:
        raise SlmError(f"the data holds ids of the tokenizer {data.tokenizer.name!r}, but the model to fine-tune reads "
                       f"{base[0].config.tokenizer!r}: fine-tune on data in the model's own tokenizer (request "
                       "records are tokenized for it)")
    return data


def model_config_for(data, model_config: GPTConfig, log) -> GPTConfig:
    """The model configuration with the vocabulary of the data: a model reads the ids of the
    tokenizer its dataset was made with (a compact one sets ``vocab_size``)."""
    tokenizer = data.tokenizer
    if (model_config.vocab_size, model_config.tokenizer) == (tokenizer.n_vocab, tokenizer.name):
        return model_config
    if tokenizer.is_compact:
        coverage = tokenizer.vocabulary.coverage.get("train", float("nan"))
        log(f"vocab_size {tokenizer.n_vocab:,} (not {model_config.vocab_size:,}): the dataset has a compact "
            f"vocabulary covering {coverage:.2%} of its training tokens")
    elif tokenizer.name == GPT2:
        log(f"vocab_size {tokenizer.n_vocab:,} (not {model_config.vocab_size:,}): the dataset holds GPT-2's ids")
    else:
        log(f"vocab_size {tokenizer.n_vocab:,} (not {model_config.vocab_size:,}): the dataset's tokenizer "
            f"{tokenizer.name} has {tokenizer.n_vocab:,} ids")
    return model_config.with_tokenizer(tokenizer)
