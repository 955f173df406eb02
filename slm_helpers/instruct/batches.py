"""Records as batches: the prompt's targets masked, so fine-tuning learns the story only."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

import torch

from slm_helpers.errors import DataError, SlmError
from slm_helpers.instruct.folder import read_records
from slm_helpers.instruct.records import Record

REQUESTS_SOURCE = "records of requests"  # the source a checkpoint of a fine-tuning run on them records


def example_row(prompt: list[int], story: list[int], block_size: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch row of one record: the inputs are the prompt's ids then the story's (ending with
    ``<|endoftext|>``), cut to ``block_size`` and padded with ``pad``; the targets are the
    inputs shifted by one, with -1 (no loss) where the next token is still the prompt's and
    after the story's end."""
    ids = (prompt + story)[: block_size + 1]
    ends = len(ids) - 1  # targets from here on are padding
    ids = ids + [pad] * (block_size + 1 - len(ids))
    x, y = torch.tensor(ids[:-1]), torch.tensor(ids[1:])
    y[: max(len(prompt) - 1, 0)] = -1  # the target at position len(prompt) - 1 is the story's first token
    y[ends:] = -1
    return x, y


class RequestData:
    """Records as a batch source for :func:`slm_helpers.train.train`: each row of a batch is
    one record from its start, its prompt and story in the model's tokenizer, followed by
    ``<|endoftext|>`` and padded with it. The targets of the prompt's positions and of the
    padding are -1, which the loss ignores: the model is trained to write the story, not to
    predict the request."""

    def __init__(self, records: dict[str, list[Record]], tokenizer, name: str = "records"):
        from slm_helpers.tokenizer import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise SlmError(f"tokenizer must be the model's Tokenizer (model, tokenizer = load_model(path)), not "
                           f"{type(tokenizer).__name__}")
        for split in ("train", "validation"):
            if not records.get(split):
                raise DataError(f"{name} has no {split} records: prepare the folder again with --overwrite")
        self.tokenizer, self.name, self.records = tokenizer, name, records
        self.rows = {split: [self.encode(r) for r in rows] for split, rows in records.items()}
        self.sample_prompt = records["validation"][0].prompt()  # what the run's greedy samples answer

    @classmethod
    def open(cls, folder: str | os.PathLike, tokenizer) -> RequestData:
        return cls({split: read_records(folder, split) for split in ("train", "validation")}, tokenizer, str(folder))

    def encode(self, record: Record) -> tuple[list[int], list[int]]:
        """The prompt's ids and the story's (ending with ``<|endoftext|>``)."""
        story = self.tokenizer.encode_ordinary(record.story) + [self.tokenizer.eot_token]
        return list(self.tokenizer.encode_ordinary(record.prompt())), list(story)

    def example(self, record: Record, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One row: inputs and targets, the targets -1 where no loss is taken."""
        return example_row(*self.encode(record), block_size, self.tokenizer.eot_token)

    def batch(self, split: str, batch_size: int, block_size: int, generator=None, device="cpu"):
        rows = self.rows[split]
        picks = torch.randint(len(rows), (batch_size,), generator=generator).tolist()
        x, y = zip(*(example_row(*rows[i], block_size, self.tokenizer.eot_token) for i in picks))
        return torch.stack(x).to(device), torch.stack(y).to(device)

    def identity(self) -> dict:
        """What a checkpoint records of these records (the shape of
        :meth:`TokenDataset.identity`, and a fingerprint of their text), so that a resume on other
        records, or on a token dataset, is refused."""
        text = "".join(json.dumps(asdict(r)) for split in ("train", "validation") for r in self.records[split])
        return dict(path=self.name, source=REQUESTS_SOURCE, source_options=None, tokenizer=self.tokenizer.name,
                    splits={s: {"records": len(r)} for s, r in self.records.items()},
                    fingerprint=hashlib.sha256(text.encode()).hexdigest()[:16])
