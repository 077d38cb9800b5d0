"""Tokenization, done once per sweep and shared by every trial through Ray's object store, and
the batching that trials do with it: length-grouped batches and dynamic padding."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hpo.trainables.data import Examples, Labels, Splits


@dataclass
class EncodedSplit:
    """Token ids per example (unpadded), optional segment ids, and label ids."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: np.ndarray
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class EncodedData:
    train: EncodedSplit
    validation: EncodedSplit
    test: EncodedSplit | None
    labels: Labels
    pad_token_id: int


def _encode_split(examples: Examples, tokenizer, max_length: int) -> EncodedSplit:
    encoded = tokenizer(
        examples.texts, examples.pairs, truncation=True, max_length=max_length, padding=False
    )
    token_types = encoded.get("token_type_ids")
    return EncodedSplit(
        input_ids=[np.asarray(ids, dtype=np.int32) for ids in encoded["input_ids"]],
        token_type_ids=(
            None if token_types is None else [np.asarray(t, dtype=np.int8) for t in token_types]
        ),
        labels=examples.labels,
    )


def encode(splits: Splits, tokenizer, max_length: int) -> EncodedData:
    """Tokenizes every split with the sweep's tokenizer (no padding: batches pad themselves)."""
    return EncodedData(
        train=_encode_split(splits.train, tokenizer, max_length),
        validation=_encode_split(splits.validation, tokenizer, max_length),
        test=None if splits.test is None else _encode_split(splits.test, tokenizer, max_length),
        labels=splits.labels,
        pad_token_id=tokenizer.pad_token_id or 0,
    )


def epoch_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, group_by_length: bool
) -> list[np.ndarray]:
    """The global batches of one epoch, the same on every worker for a given seed.

    With `group_by_length`, indices are shuffled, cut into chunks of 50 batches, sorted by
    length inside each chunk, and the batches shuffled again (as Hugging Face's
    LengthGroupedSampler): batches stay random but hold examples of similar length.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    if group_by_length:
        chunk = 50 * batch_size
        order = np.concatenate(
            [
                part[np.argsort(-lengths[part], kind="stable")]
                for part in np.array_split(order, max(1, math.ceil(len(order) / chunk)))
            ]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(
    split: EncodedSplit, indices: np.ndarray, pad_token_id: int, multiple: int = 1
) -> dict[str, torch.Tensor]:
    """Pads a batch to its own longest example, rounded up to `multiple`."""
    width = -(-int(split.lengths[indices].max()) // multiple) * multiple
    input_ids = np.full((len(indices), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(indices), width), dtype=np.int64)
    token_type_ids = np.zeros((len(indices), width), dtype=np.int64)
    for row, index in enumerate(indices):
        ids = split.input_ids[index]
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        if split.token_type_ids is not None:
            token_type_ids[row, : len(ids)] = split.token_type_ids[index]
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "labels": torch.from_numpy(split.labels[indices]),
    }
    if split.token_type_ids is not None:
        batch["token_type_ids"] = torch.from_numpy(token_type_ids)
    return batch
