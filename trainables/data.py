"""Reading the `data` section: local csv/tsv/json/jsonl/parquet files or `hub:` datasets, the
text (and text-pair) columns, and labels mapped to ids 0..n-1 with their names."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.core.errors import UserError
from hpo.trainables.config import DataConfig, DataSource

HUB_PREFIX = "hub:"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Labels:
    """The label names in id order: `names[i]` is the label of class i.

    `integer` says the files hold ids (0..n-1) rather than the names themselves.
    """

    names: tuple[str, ...]
    integer: bool

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


@dataclass
class Examples:
    """One split, as plain Python lists: texts, optional second texts, and label ids."""

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Splits:
    train: Examples
    validation: Examples
    test: Examples | None
    labels: Labels
    sources: dict[str, str]


def choose_source(split: str, candidates: DataSource) -> str | None:
    """The first local file that exists, or the first `hub:` source, in the order given.

    A `null` in the list ends it: the split is left out when nothing before it exists (for an
    optional test split whose Hub copy hides its labels).
    """
    options = [candidates] if isinstance(candidates, str) else list(candidates)
    for option in options:
        if option is None:
            return None
        if option.startswith(HUB_PREFIX) or Path(option).is_file():
            return option
    tried = ", ".join(options)
    raise UserError(
        f"data.{split}: no such file: {tried}. Point HPO_DATA at the data folder, fix the path, "
        f"or add a hub: source to fall back to (e.g. [{options[0]}, hub:NAME])"
    )


def parse_hub_source(source: str, split: str) -> tuple[str, str | None, str]:
    """`hub:NAME[:CONFIG][@SPLIT]` -> (name, config, split); the split defaults to the key's."""
    spec = source.removeprefix(HUB_PREFIX)
    spec, _, split_override = spec.partition("@")
    name, _, config = spec.partition(":")
    if not name:
        raise UserError(f"data.{split}: {source!r} names no dataset; write hub:NAME[:CONFIG]")
    return name, config or None, split_override or split


def read_table(split: str, source: str) -> pd.DataFrame:
    """Reads one split into a DataFrame, keeping texts such as "NA" or "null" as strings."""
    if source.startswith(HUB_PREFIX):
        return _read_hub(split, source)
    suffix = Path(source).suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(source, keep_default_na=False)
        if suffix == ".tsv":
            # TSV as GLUE writes it: fields are never quoted, so a lone `"` is text
            return pd.read_csv(source, sep="\t", keep_default_na=False, quoting=csv.QUOTE_NONE)
        if suffix in (".json", ".jsonl"):
            lines = suffix == ".jsonl" or _looks_like_json_lines(source)
            return pd.read_json(source, lines=lines, dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(source)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise UserError(f"data.{split}: cannot read {source}: {err}") from None
    raise UserError(
        f"data.{split}: {source} has an unknown file type {suffix or '(none)'}; "
        "use .csv, .tsv, .json, .jsonl or .parquet, or a hub: source"
    )


def _looks_like_json_lines(path: str) -> bool:
    with open(path, encoding="utf-8") as handle:
        return not handle.read(1).lstrip().startswith("[")


def _read_hub(split: str, source: str) -> pd.DataFrame:
    import datasets

    name, config, hub_split = parse_hub_source(source, split)
    try:
        dataset = datasets.load_dataset(name, config, split=hub_split)
    except Exception as err:  # datasets raises many types: offline, unknown name, bad split
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"data.{split}: cannot load Hub dataset {name!r} (config {config}, split "
            f"{hub_split}): {reason}. Without internet access, use a local file."
        ) from None
    frame = dataset.to_pandas()
    # Class labels become their names, so a Hub copy and a local file with `label_names` map
    # the same way (hidden test labels, -1, become missing).
    for column, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):
            frame[column] = [feature.names[i] if i >= 0 else None for i in frame[column]]
    return frame


def _column(frame: pd.DataFrame, split: str, key: str, column: str) -> pd.Series:
    if column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise UserError(
            f"data.{key}: column {column!r} is not in data.{split} (its columns: {columns})"
        )
    return frame[column]


def _texts(frame: pd.DataFrame, split: str, key: str, column: str) -> list[str]:
    values = _column(frame, split, key, column)
    if values.isna().any():
        row = int(values.isna().to_numpy().argmax())
        raise UserError(f"data.{split}: column {column!r} is empty in row {row}")
    return values.astype(str).tolist()


def _labels_column(frame: pd.DataFrame, split: str, column: str) -> pd.Series:
    values = _column(frame, split, "label", column)
    missing = int(values.isna().sum()) + int((values.astype(str) == "").sum())
    if missing:
        hint = " (Hub test splits often hide their labels)" if split == "test" else ""
        raise UserError(f"data.{split}: {missing} rows have no label in column {column!r}{hint}")
    return values


def _is_integral(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return True
    if pd.api.types.is_float_dtype(values):
        return bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    return False


def build_labels(train_labels: pd.Series, label_names: list[str] | None) -> Labels:
    """Label names in id order, from the training labels and the optional `label_names`."""
    if _is_integral(train_labels):
        ids = train_labels.astype(int)
        if ids.min() < 0:
            raise UserError(
                f"data.label: labels must be 0 or more, found {ids.min()} in data.train "
                "(Hub test splits often hide their labels as -1)"
            )
        count = int(ids.max()) + 1
        if label_names is None:
            return Labels(tuple(f"LABEL_{i}" for i in range(count)), integer=True)
        if len(label_names) < count:
            raise UserError(
                f"data.label_names: {len(label_names)} names for labels 0..{count - 1}; "
                f"give {count} names"
            )
        return Labels(tuple(label_names), integer=True)
    found = sorted(set(train_labels.astype(str)))
    if label_names is None:
        return Labels(tuple(found), integer=False)
    missing = sorted(set(found) - set(label_names))
    if missing:
        raise UserError(f"data.label_names: missing labels found in data.train: {missing}")
    return Labels(tuple(label_names), integer=False)


def _label_ids(values: pd.Series, labels: Labels, split: str) -> np.ndarray:
    if labels.integer:
        if not _is_integral(values):
            raise UserError(f"data.{split}: labels must be whole numbers like data.train's")
        ids = values.astype(int).to_numpy()
        bad = ids[(ids < 0) | (ids >= len(labels.names))]
        if len(bad):
            raise UserError(
                f"data.{split}: label {bad[0]} is outside 0..{len(labels.names) - 1} "
                "(Hub test splits often hide their labels as -1)"
            )
        return ids.astype(np.int64)
    mapping = labels.label2id
    unknown = sorted(set(values.astype(str)) - set(mapping))
    if unknown:
        raise UserError(f"data.{split}: labels {unknown[:5]} do not occur in data.train")
    return values.astype(str).map(mapping).to_numpy(dtype=np.int64)


def _subsample(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    if size is None or size >= len(frame):
        return frame
    return frame.sample(n=size, random_state=seed).reset_index(drop=True)


def _examples(frame: pd.DataFrame, split: str, config: DataConfig, labels: Labels) -> Examples:
    if frame.empty:
        raise UserError(f"data.{split}: the file has no rows")
    texts = _texts(frame, split, "text", config.text)
    pairs = _texts(frame, split, "text_pair", config.text_pair) if config.text_pair else None
    label_ids = _label_ids(_labels_column(frame, split, config.label), labels, split)
    return Examples(texts=texts, pairs=pairs, labels=label_ids)


def load_splits(config: DataConfig) -> Splits:
    """Reads train, validation and (optional) test, with one label mapping for all three."""
    chosen = {
        split: choose_source(split, getattr(config, split))
        for split in SPLITS
        if getattr(config, split) is not None
    }
    sources = {split: source for split, source in chosen.items() if source is not None}
    if "validation" not in sources:
        raise UserError("data.validation: a validation split is required (null ended its list)")
    if "train" not in sources:
        raise UserError("data.train: a training split is required (null ended its list)")
    frames = {split: read_table(split, source) for split, source in sources.items()}
    frames["train"] = _subsample(frames["train"], config.max_train_samples, config.seed)
    for split in ("validation", "test"):
        if split in frames:
            frames[split] = _subsample(frames[split], config.max_eval_samples, config.seed)
    train_labels = _labels_column(frames["train"], "train", config.label)
    labels = build_labels(train_labels, config.label_names)
    examples = {split: _examples(frame, split, config, labels) for split, frame in frames.items()}
    return Splits(
        train=examples["train"],
        validation=examples["validation"],
        test=examples.get("test"),
        labels=labels,
        sources=sources,
    )


def load_test_split(config: DataConfig, label_names: list[str]) -> Examples | None:
    """The test split alone, its labels mapped by a trained model's label names (for the
    promotion gate); None when the sweep has no test split."""
    if config.test is None:
        return None
    source = choose_source("test", config.test)
    if source is None:
        return None
    frame = _subsample(read_table("test", source), config.max_eval_samples, config.seed)
    values = _labels_column(frame, "test", config.label)
    labels = Labels(tuple(label_names), integer=_is_integral(values))
    return _examples(frame, "test", config, labels)
