"""The sst2_slice fixture that the loop tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.trainables.config import DataConfig
from hpo.trainables.data import load_splits
from hpo.trainables.encoding import EncodedData, encode


@pytest.fixture(scope="session")
def sst2_slice(tiny_model: str, data_dir: Path) -> EncodedData:
    from transformers import AutoTokenizer

    splits = load_splits(
        DataConfig(
            train=f"{data_dir}/sst2/train.csv",
            validation=f"{data_dir}/sst2/validation.csv",
            text="sentence",
            label_names=["negative", "positive"],
            max_train_samples=160,
            max_eval_samples=48,
        )
    )
    return encode(splits, AutoTokenizer.from_pretrained(tiny_model), max_length=64)
