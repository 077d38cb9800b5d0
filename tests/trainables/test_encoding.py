"""Tokenization once per sweep, length-grouped batches and dynamic padding."""

from __future__ import annotations

import numpy as np

from hpo.trainables.data import Examples, Labels, Splits
from hpo.trainables.encoding import EncodedSplit, collate, encode, epoch_batches


def test_epoch_batches_cover_every_example_once() -> None:
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    for grouped in (False, True):
        batches = epoch_batches(lengths, 32, seed=3, group_by_length=grouped)
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(1000))
        assert [len(b) for b in batches].count(32) == 31
        again = epoch_batches(lengths, 32, seed=3, group_by_length=grouped)
        assert all(
            (a == b).all() for a, b in zip(batches, again, strict=True)
        )  # the same on every worker
        other_epoch = epoch_batches(lengths, 32, seed=4, group_by_length=grouped)
        assert any(
            (a != b).any() for a, b in zip(batches, other_epoch, strict=True) if len(a) == len(b)
        )


def test_grouping_by_length_cuts_padding() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=3200)

    def padded_tokens(grouped: bool) -> int:
        batches = epoch_batches(lengths, 32, seed=0, group_by_length=grouped)
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    assert padded_tokens(True) < 0.7 * padded_tokens(False)


def test_collate_pads_to_the_longest_in_the_batch() -> None:
    split = EncodedSplit(
        input_ids=[np.array([101, 7, 102]), np.array([101, 7, 8, 9, 102]), np.array([101, 102])],
        token_type_ids=[np.array([0, 0, 0]), np.array([0, 0, 1, 1, 1]), np.array([0, 0])],
        labels=np.array([0, 1, 1]),
    )
    batch = collate(split, np.array([0, 2]), pad_token_id=0)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [0, 1]
    assert collate(split, np.array([1]), 0)["token_type_ids"].tolist() == [[0, 0, 1, 1, 1]]


def test_encode_pairs_with_segment_ids(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = Examples(texts=["a cat", "the dog"], pairs=["a dog", "ran"], labels=np.array([0, 1]))
    splits = Splits(examples, examples, None, Labels(("no", "yes"), integer=True), {})
    data = encode(splits, tokenizer, max_length=16)
    first = data.train.input_ids[0]
    assert tokenizer.decode(first) == "[CLS] a cat [SEP] a dog [SEP]"
    assert data.train.token_type_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert data.train.lengths.tolist() == [7, 6]
    long = Examples(texts=["word " * 100], pairs=None, labels=np.array([0]))
    truncated = encode(Splits(long, long, None, splits.labels, {}), tokenizer, max_length=16)
    assert truncated.train.lengths.tolist() == [16]
