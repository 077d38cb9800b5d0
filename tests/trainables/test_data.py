"""Reading the data section: file formats, pairs, string and int labels, fallbacks, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hpo.core.errors import UserError
from hpo.trainables.config import DataConfig
from hpo.trainables.data import choose_source, load_splits, parse_hub_source, read_table

ROWS = pd.DataFrame(
    {
        "text": ["good film", "NA", "bad plot", "null", "great cast", "dull"],
        "other": ["a", "b", "c", "d", "e", "f"],
        "label": [1, 0, 0, 1, 1, 0],
        "topic": ["LOC", "HUM", "LOC", "NUM", "HUM", "LOC"],
    }
)


def write(frame: pd.DataFrame, path: Path) -> str:
    match path.suffix:
        case ".csv":
            frame.to_csv(path, index=False)
        case ".tsv":
            frame.to_csv(path, index=False, sep="\t")
        case ".json":
            frame.to_json(path, orient="records")
        case ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        case ".parquet":
            frame.to_parquet(path)
    return str(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_file_type_reads_the_same(tmp_path: Path, suffix: str) -> None:
    path = write(ROWS, tmp_path / f"data{suffix}")
    splits = load_splits(DataConfig(train=path, validation=path, label_names=["neg", "pos"]))
    assert splits.train.texts == ["good film", "NA", "bad plot", "null", "great cast", "dull"]
    assert splits.train.labels.tolist() == [1, 0, 0, 1, 1, 0]
    assert splits.labels.id2label == {0: "neg", 1: "pos"}
    assert splits.test is None


def test_glue_tsv_takes_quotes_as_text(tmp_path: Path) -> None:
    """GLUE's .tsv files never quote: a lone `"` in a text must not swallow the next rows."""
    path = tmp_path / "train.tsv"
    path.write_text(
        "sentence\tlabel\n"
        'the " director\'s cut " is longer\t1\n'
        'a 12" record\t0\n'
        '"quoted" start\t1\n'
        "\t0\n"
    )
    frame = read_table("train", str(path))
    assert frame.sentence.tolist() == [
        'the " director\'s cut " is longer',
        'a 12" record',
        '"quoted" start',
        "",
    ]
    assert frame.label.tolist() == [1, 0, 1, 0]


def test_csv_keeps_quoting_for_commas_tabs_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('sentence,label\n"a tab\there, a comma",1\n"she said ""fine""",0\n,1\n')
    frame = read_table("train", str(path))
    assert frame.sentence.tolist() == ["a tab\there, a comma", 'she said "fine"', ""]
    assert frame.label.tolist() == [1, 0, 1]


def test_string_labels_any_number_of_classes(tmp_path: Path) -> None:
    path = write(ROWS, tmp_path / "d.csv")
    splits = load_splits(DataConfig(train=path, validation=path, label="topic"))
    assert splits.labels.names == ("HUM", "LOC", "NUM")
    assert splits.train.labels.tolist() == [1, 0, 1, 2, 0, 1]
    named = load_splits(
        DataConfig(train=path, validation=path, label="topic", label_names=["NUM", "LOC", "HUM"])
    )
    assert named.train.labels.tolist() == [1, 2, 1, 0, 2, 1]


def test_text_pairs(tmp_path: Path) -> None:
    path = write(ROWS, tmp_path / "d.csv")
    splits = load_splits(DataConfig(train=path, validation=path, text_pair="other"))
    assert splits.train.pairs == ["a", "b", "c", "d", "e", "f"]


def test_subsamples_are_seeded(tmp_path: Path) -> None:
    path = write(ROWS, tmp_path / "d.csv")
    config = DataConfig(train=path, validation=path, max_train_samples=3, max_eval_samples=2)
    first, again = load_splits(config), load_splits(config)
    assert len(first.train) == 3 and len(first.validation) == 2
    assert first.train.texts == again.train.texts


def test_errors_name_the_key(tmp_path: Path) -> None:
    path = write(ROWS, tmp_path / "d.csv")
    with pytest.raises(
        UserError,
        match=r"data.text: column 'sentence' is not in data.train "
        r"\(its columns: text, other, label, topic\)",
    ):
        load_splits(DataConfig(train=path, validation=path, text="sentence"))
    with pytest.raises(UserError, match="data.train: no such file"):
        load_splits(DataConfig(train=str(tmp_path / "missing.csv"), validation=path))
    with pytest.raises(UserError, match="unknown file type .xlsx"):
        (tmp_path / "d.xlsx").write_text("x")
        load_splits(DataConfig(train=str(tmp_path / "d.xlsx"), validation=path))
    unseen = write(
        ROWS.assign(topic=["LOC", "XXX", "LOC", "NUM", "HUM", "LOC"]), tmp_path / "v.csv"
    )
    with pytest.raises(UserError, match=r"data.validation: labels \['XXX'\] do not occur"):
        load_splits(DataConfig(train=path, validation=unseen, label="topic"))
    negative = write(ROWS.assign(label=[1, 0, -1, 1, 1, 0]), tmp_path / "n.csv")
    with pytest.raises(UserError, match="label -1 is outside 0..1"):
        load_splits(DataConfig(train=path, validation=negative))
    with pytest.raises(UserError, match="data.label_names: 1 names for labels 0..1"):
        load_splits(DataConfig(train=path, validation=path, label_names=["only"]))


def test_source_choice_prefers_local_files_then_the_hub(tmp_path: Path) -> None:
    local = write(ROWS, tmp_path / "d.csv")
    missing = str(tmp_path / "missing.csv")
    assert choose_source("train", [local, "hub:stanfordnlp/sst2"]) == local
    assert choose_source("train", [missing, "hub:stanfordnlp/sst2"]) == "hub:stanfordnlp/sst2"
    assert choose_source("train", [missing, local]) == local
    assert choose_source("test", [missing, None]) is None
    with pytest.raises(UserError, match="add a hub: source to fall back to"):
        choose_source("train", [missing])


def test_optional_test_split_is_left_out(tmp_path: Path) -> None:
    path = write(ROWS, tmp_path / "d.csv")
    splits = load_splits(DataConfig(train=path, validation=path, test=[path + ".gone", None]))
    assert splits.test is None and "test" not in splits.sources
    with_test = load_splits(DataConfig(train=path, validation=path, test=[path, None]))
    assert len(with_test.test) == 6


def test_hub_sources_parse() -> None:
    assert parse_hub_source("hub:stanfordnlp/sst2", "train") == ("stanfordnlp/sst2", None, "train")
    assert parse_hub_source("hub:glue:sst2", "validation") == ("glue", "sst2", "validation")
    assert parse_hub_source("hub:glue:mrpc@test", "validation") == ("glue", "mrpc", "test")
    with pytest.raises(UserError, match="names no dataset"):
        parse_hub_source("hub:", "train")


def test_unreachable_hub_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match=r"data.train: cannot load Hub dataset 'no-such/dataset'"):
        load_splits(DataConfig(train="hub:no-such/dataset", validation="hub:no-such/dataset"))


def test_shared_datasets(data_dir: Path) -> None:
    """The three shared datasets: pairs (MRPC) and six string-labelled classes (TREC)."""
    mrpc = load_splits(
        DataConfig(
            train=f"{data_dir}/mrpc/train.csv",
            validation=f"{data_dir}/mrpc/validation.csv",
            text="sentence1",
            text_pair="sentence2",
            max_train_samples=50,
        )
    )
    assert mrpc.train.pairs is not None and len(mrpc.train) == 50
    trec = load_splits(
        DataConfig(
            train=f"{data_dir}/trec/train.csv",
            validation=f"{data_dir}/trec/validation.csv",
            label="coarse_label",
        )
    )
    assert trec.labels.names == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert set(trec.validation.labels.tolist()) <= set(range(6))
