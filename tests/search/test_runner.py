"""Integration: real sweeps of a tiny BERT on slices of the shared data, through Ray Tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hpo.core.rundir import TRIALS
from hpo.search.runner import run_sweep
from hpo.search.sweepfile import parse_sweep
from tests.helpers import result_rows, tiny_sweep

pytestmark = pytest.mark.usefixtures("ray_session", "data_dir")


def sweep_of(tiny_model: str, tmp_path: Path, **sections: Any):
    return parse_sweep(tiny_sweep(tiny_model, tmp_path / "runs", **sections))


def trial_rows(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every report of every trial, from Tune's result.json files."""
    return result_rows(Path(summary["run_dir"]))


def trials_table(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.read_csv(Path(summary["run_dir"]) / TRIALS)


@pytest.mark.parametrize("algorithm", ["grid", "random", "tpe", "hyperopt", "gp"])
def test_every_algorithm_finishes_a_sweep(algorithm: str, tiny_model: str, tmp_path: Path) -> None:
    space = {"learning_rate": {"loguniform": [1e-4, 3e-3]}, "batch_size": {"choice": [16, 32]}}
    if algorithm == "grid":
        space = {"learning_rate": {"grid": [1e-4, 1e-3]}, "batch_size": {"choice": [16, 32]}}
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        space=space,
        search={
            "algorithm": algorithm,
            "num_samples": 1 if algorithm == "grid" else 3,
            "max_concurrent": 2,
            "n_startup_trials": 2,
        },
    )
    summary = run_sweep(sweep)

    table = trials_table(summary)
    assert len(table) == (4 if algorithm == "grid" else 3)
    assert set(table.state) == {"completed"}
    assert (table.reports == 2).all()
    if algorithm == "grid":
        assert sorted(
            zip(table["config.learning_rate"], table["config.batch_size"], strict=True)
        ) == [
            (1e-4, 16),
            (1e-4, 32),
            (1e-3, 16),
            (1e-3, 32),
        ]
    best = summary["best"]
    assert best["metric"] == table["best_loss"].min()
    assert Path(best["checkpoint"], "model.safetensors").is_file()
    assert summary["algorithm"] == algorithm and summary["num_trials"] == len(table)


def run_scheduled(
    tiny_model: str, tmp_path: Path, scheduler: dict, *, trials: int, concurrent: int, **space: Any
) -> dict[str, Any]:
    """Runs `trials` random trials (of `space`, default a learning-rate range) under a
    scheduler; returns the summary."""
    return run_sweep(
        sweep_of(
            tiny_model,
            tmp_path,
            scheduler=scheduler,
            search={"algorithm": "random", "num_samples": trials, "max_concurrent": concurrent},
            space=space or {"learning_rate": {"loguniform": [1e-6, 5e-3]}},
        )
    )


def test_fifo_runs_every_trial_to_the_end(tiny_model: str, tmp_path: Path) -> None:
    fifo = {"name": "fifo", "max_epochs": 1.5}
    summary = run_scheduled(tiny_model, tmp_path, fifo, trials=2, concurrent=2)
    table = trials_table(summary)
    assert set(table.state) == {"completed"} and (table.reports == 3).all()
    assert (table.epochs == 1.5).all()


def test_asha_stops_trials_at_rungs(tiny_model: str, tmp_path: Path) -> None:
    asha = {"name": "asha", "max_epochs": 2, "grace_period": 0.5, "reduction_factor": 2}
    summary = run_scheduled(tiny_model, tmp_path, asha, trials=6, concurrent=2)
    table = trials_table(summary)
    stopped = table[table.state == "stopped_early"]
    assert len(stopped) >= 1 and (table.state == "completed").sum() >= 1
    assert set(stopped.reports) <= {1, 2}  # ASHA's rungs: 1 and 2 reports (0.5 and 1 epoch)


def test_successive_halving_pauses_promotes_and_resumes(tiny_model: str, tmp_path: Path) -> None:
    """Synchronous halving of 4 trials: rungs at 1, 2, 4 reports keep 2, then 1. Trials that
    reach a rung first are paused and, when promoted, resume from their checkpoint."""
    halving = {"name": "successive_halving", "max_epochs": 2, "grace_period": 0.5}
    summary = run_scheduled(
        tiny_model, tmp_path, {**halving, "reduction_factor": 2}, trials=4, concurrent=4
    )
    table = trials_table(summary)
    assert sorted(table.reports) == [1, 1, 2, 4]
    assert sorted(table.state) == ["completed", "stopped_early", "stopped_early", "stopped_early"]

    losses_at_rung_1 = {trial: reports[0]["loss"] for trial, reports in trial_rows(summary).items()}
    promoted = table[table.reports > 1].trial_id
    assert max(losses_at_rung_1[t] for t in promoted) <= min(
        losses_at_rung_1[t] for t in table[table.reports == 1].trial_id
    )

    resumed = [
        (reports[0]["step"], previous, row)
        for reports in trial_rows(summary).values()
        for previous, row in zip(reports, reports[1:], strict=False)
        if row["iterations_since_restore"] < row["training_iteration"]
    ]
    assert resumed, "no promoted trial was paused and resumed"
    for steps_per_report, previous, row in resumed:
        assert row["epoch"] > previous["epoch"]  # continues its epochs instead of restarting
        assert row["step"] == previous["step"] + steps_per_report


def test_hyperband_halves_its_first_bracket(tiny_model: str, tmp_path: Path) -> None:
    """max_t = 2 reports, reduction 2: bracket one starts 2 trials at 1 report and keeps 1,
    bracket two runs 2 trials fully."""
    hyperband = {"name": "hyperband", "max_epochs": 1, "reduction_factor": 2}
    summary = run_scheduled(tiny_model, tmp_path, hyperband, trials=4, concurrent=4)
    table = trials_table(summary)
    assert sorted(table.reports) == [1, 2, 2, 2]


def test_median_rule_stops_trials_worse_than_the_median(tiny_model: str, tmp_path: Path) -> None:
    """Two sane learning rates, then four that blow the loss up: once two trials have results,
    the rule stops diverging ones long before their last evaluation. (Which evaluation depends
    on the median of the other trials at that moment, diverging ones included, so a trial whose
    loss dips below that median may survive one more report.)"""
    median = {"name": "median", "max_epochs": 2, "grace_period": 0.5, "min_samples_required": 2}
    rates = {"grid": [1e-4, 2e-4, 0.3, 0.4, 0.5, 0.6]}
    summary = run_scheduled(
        tiny_model, tmp_path, median, trials=1, concurrent=2, learning_rate=rates
    )
    table = trials_table(summary)
    stopped = table[table.state == "stopped_early"]
    assert len(stopped) >= 2
    assert (stopped["config.learning_rate"] >= 0.3).all()
    assert (stopped.reports <= 2).all()
    assert (table[table["config.learning_rate"] < 1e-3].reports == 4).all()
    assert (table[table["config.learning_rate"] < 1e-3].state == "completed").all()


def test_two_worker_ddp_trial(tiny_model: str, tmp_path: Path) -> None:
    """train.workers: 2 runs a Ray Train TorchTrainer with DDP over gloo; the checkpoint path
    reaches Tune as a metric and becomes the best checkpoint."""
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        search={"algorithm": "random", "num_samples": 1},
        train={"workers": 2, "cpus_per_worker": 1, "evals_per_epoch": 2},
    )
    summary = run_sweep(sweep)
    assert summary["launcher"] == "ray_train" and summary["workers_per_trial"] == 2
    rows = next(iter(trial_rows(summary).values()))
    assert [r["epoch"] for r in rows] == [0.5, 1.0]
    assert [r["samples"] for r in rows] == [128, 256]  # the global batch is split by the ranks
    assert all(Path(r["checkpoint_path"]).is_dir() for r in rows[-1:])
    assert Path(summary["best"]["checkpoint"], "config.json").is_file()


def test_sentence_pairs_report_f1(tiny_model: str, tmp_path: Path) -> None:
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        metric="f1",
        data={
            "train": "${HPO_DATA}/mrpc/train.csv",
            "validation": "${HPO_DATA}/mrpc/validation.csv",
            "text": "sentence1",
            "text_pair": "sentence2",
            "max_train_samples": 128,
            "max_eval_samples": 64,
            "label_names": ["not_equivalent", "equivalent"],
        },
    )
    summary = run_sweep(sweep)
    assert summary["mode"] == "max"
    assert set(summary["best"]["metrics"]) == {"accuracy", "f1", "f1_macro", "mcc", "loss"}
    assert summary["labels"] == ["not_equivalent", "equivalent"]


def test_string_labels_and_the_best_checkpoint_in_a_pipeline(
    tiny_model: str, tmp_path: Path
) -> None:
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        metric="accuracy",
        data={
            "train": "${HPO_DATA}/trec/train.csv",
            "validation": "${HPO_DATA}/trec/validation.csv",
            "text": "text",
            "label": "coarse_label",
            "max_train_samples": 256,
            "max_eval_samples": 64,
        },
    )
    summary = run_sweep(sweep)
    assert summary["labels"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]

    from transformers import pipeline

    classify = pipeline("text-classification", model=summary["best"]["checkpoint"], device="cpu")
    answers = classify(["What city is the Eiffel Tower in ?", "Who wrote Hamlet ?"])
    assert {a["label"] for a in answers} <= set(summary["labels"])
    best = summary["best"]
    rows = trial_rows(summary)[best["trial_id"]]
    assert best["metric"] == max(r["accuracy"] for r in rows)  # the best epoch, not the last


def test_strategy_as_a_hyperparameter_with_lora_keys_for_lora_trials_only(
    tiny_model: str, tmp_path: Path
) -> None:
    """TPE searches the strategy and, define-by-run, a LoRA rank that only LoRA trials get;
    trials.csv shows what each trained; the best checkpoint loads in a pipeline whatever its
    strategy; the run's report (importance included) is written."""
    from transformers import pipeline

    from hpo.core.storage import StorageDir
    from hpo.search.report import write_run_report

    sweep = sweep_of(
        tiny_model,
        tmp_path,
        search={"algorithm": "tpe", "num_samples": 4, "max_concurrent": 2, "n_startup_trials": 2},
        space={
            "learning_rate": {"loguniform": [1e-4, 3e-3]},
            "strategy": {"choice": ["bitfit", "lora"]},
            "lora_r": {"choice": [2, 4]},
        },
    )
    summary = run_sweep(sweep)
    table = trials_table(summary)
    assert set(table.state) == {"completed"} and len(table) == 4
    lora = table["config.strategy"] == "lora"
    assert lora.any() and (~lora).any()
    assert table.loc[lora, "config.lora_r"].isin([2, 4]).all()
    assert table.loc[~lora, "config.lora_r"].isna().all()  # not drawn for bitfit trials
    assert (table.trainable_params > 0).all() and (table.samples_per_s > 0).all()
    classify = pipeline("text-classification", model=summary["best"]["checkpoint"], device="cpu")
    assert classify("a fine film")[0]["label"] in ("LABEL_0", "LABEL_1", "negative", "positive")
    report = write_run_report(StorageDir.at(summary["run_dir"])).read_text()
    assert "## Fine-tuning strategies" in report and "## Hyperparameter importance" in report
    rows = {
        line.split("|")[1].strip(): line
        for line in report.splitlines()
        if "| lora |" in line or "| bitfit |" in line
    }
    assert set(rows) == {"lora", "bitfit"}


def _lineage_by_index(table: pd.DataFrame) -> dict[str, str]:
    """trials.csv's lineage with trial ids replaced by their index in the sweep (the ids'
    prefix differs from run to run)."""

    def index(trial_id: str) -> str:
        return trial_id.rsplit("_", 1)[-1]

    return {
        index(row.trial_id): ";".join(
            f"{index(parent)}@{epoch}"
            for parent, epoch in (step.split("@") for step in str(row.lineage).split(";"))
        )
        for row in table.itertuples()
        if isinstance(row.lineage, str) and row.lineage
    }


@pytest.mark.parametrize("scheduler", ["pbt", "pb2"])
def test_a_population_copies_checkpoints_and_records_the_lineage(
    scheduler: str, tiny_model: str, tmp_path: Path
) -> None:
    """Four trials, perturbed every half epoch: the bottom half takes over the top half's
    checkpoints and goes on with a new learning rate (PBT's perturbed, PB2's picked by its
    bandit); trials.csv and TensorBoard show who copied whom and when. (The draws are seeded,
    test_ray_compat shows; which copies happen also depends on whether a donor's checkpoint is
    saved in time, so two runs may differ.)"""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = run_sweep(
        sweep_of(
            tiny_model,
            tmp_path,
            search={"algorithm": "random", "num_samples": 4, "max_concurrent": 4},
            scheduler={
                "name": scheduler,
                "max_epochs": 1.5,
                "perturbation_interval": 0.5,
                "quantile_fraction": 0.5,
            },
            space={"learning_rate": {"loguniform": [1e-5, 3e-3]}},
        )
    )
    table = trials_table(summary)
    assert set(table.state) == {"completed"} and (table.epochs == 1.5).all()
    lineage = _lineage_by_index(table)
    assert lineage  # the bottom half copies at each of the two perturbation points
    indices = {trial_id.rsplit("_", 1)[-1] for trial_id in table.trial_id}
    for steps in lineage.values():
        for step in steps.split(";"):
            parent, epoch = step.split("@")
            assert parent in indices and epoch in ("0.5", "1")
    assert table["config.learning_rate"].between(1e-5, 3e-3).all()  # perturbed within bounds
    for rows in trial_rows(summary).values():  # a copy continues, it never starts over
        samples = [row["samples"] for row in rows]
        assert samples == sorted(samples) and samples[-1] == 384

    copied = next(t for t in table.itertuples() if isinstance(t.lineage, str) and t.lineage)
    logdir = Path(summary["run_dir"]) / "tensorboard" / "trials" / copied.trial_id
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert "pbt/learning_rate" in events.Tags()["scalars"]
    assert any(tag.startswith("pbt/lineage") for tag in events.Tags()["tensors"])


def test_extend_adds_trials_that_start_from_the_past_ones(
    finished_run: Path, tmp_path: Path
) -> None:
    """`hpo extend` on (a copy of) the shared finished sweep, its searcher switched to
    HyperOpt: the past trials stay, the new ones join them in trials.csv, the summary and the
    curve (which goes on from the sweep's compute), and HyperOpt is handed both past trials
    (test_space shows that Optuna's and HyperOpt's searchers model them)."""
    import json
    import shutil

    from hpo.core.storage import StorageDir
    from hpo.search.compute import read_curve
    from hpo.search.runner import extend_sweep

    run = tmp_path / "finished"
    shutil.copytree(finished_run, run)
    before = trials_table({"run_dir": str(run)})
    curve_before = read_curve(run / "curve.csv")

    summary = extend_sweep(
        StorageDir.at(str(run)), add_trials=2, overrides=["search.algorithm=hyperopt"]
    )

    table = trials_table(summary)
    assert len(table) == 4 and list(table.trial_id[:2]) == list(before.trial_id)
    assert set(table.state) == {"completed"}
    assert summary["num_trials"] == 4 and summary["extensions"] == [
        {"trials_before": 2, "prior": 2, "left_out": 0, "trials_added": 2}
    ]
    assert summary["train_samples"] == table.samples.sum()
    curve = read_curve(run / "curve.csv")
    assert curve[: len(curve_before)] == curve_before  # the past points stay
    added = [p.samples for p in curve[len(curve_before) :]]
    assert len(added) == 4 and added == sorted(added) and added[0] > curve_before[-1].samples
    assert len(list((run / "tensorboard" / "trials").iterdir())) == 4
    assert json.loads((run / "before_extend.json").read_text())["trials"][0]["trial_id"] in set(
        before.trial_id
    )
    from rich.console import Console

    from hpo.search.status import show_status

    console = Console(record=True, width=200)
    show_status(StorageDir.at(str(run)), console=console, watch=False, interval=0)
    assert "4/4 trials (4 completed)" in console.export_text()


def test_warm_start_hands_another_runs_fitting_trials_to_the_searcher(
    finished_run: Path, tiny_model: str, tmp_path: Path
) -> None:
    from hpo.core.errors import UserError
    from hpo.search.runner import _warm_start

    search = {"algorithm": "tpe", "num_samples": 2}
    sweep = sweep_of(tiny_model, tmp_path, search=search, warm_start=str(finished_run))
    start = _warm_start(sweep)
    assert len(start.prior) == 2 and all(
        set(p.params) == {"learning_rate", "batch_size"} for p in start.prior
    )
    assert start.facts == {"warm_start": {"run_dir": str(finished_run), "trials": 2, "left_out": 0}}

    narrow = {"learning_rate": {"loguniform": [1e-7, 1e-6]}, "batch_size": 16}
    elsewhere = sweep_of(
        tiny_model, tmp_path, search=search, space=narrow, warm_start=str(finished_run)
    )
    with pytest.raises(UserError, match="none of the 2 trials .* fits this sweep's space"):
        _warm_start(elsewhere)
    with pytest.raises(UserError, match="warm_start: search.algorithm random does not learn"):
        sweep_of(tiny_model, tmp_path, warm_start=str(finished_run))


def test_accuracy_against_latency_keeps_the_pareto_front_and_selects_by_latency(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """metric: [accuracy, latency_ms]: Optuna's TPE searches both (its study has two
    objectives); every trial measures its latency once and reports it with each evaluation;
    a model with one of its two layers dropped serves faster; the summary keeps the front,
    and `serve.select` deploys the fastest trial within the accuracy margin as `best`."""
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        metric=["accuracy", "latency_ms"],
        search={"algorithm": "tpe", "num_samples": 4, "max_concurrent": 2, "n_startup_trials": 2},
        space={
            "learning_rate": {"loguniform": [1e-4, 3e-3]},
            "num_layers": {"choice": [1, 2]},
        },
        serve={"select": {"fastest_within": 1.0}},  # every trial is within 1.0 accuracy
    )
    summary = run_sweep(sweep)
    assert "latency_ms " in capsys.readouterr().out  # each evaluation's line shows it
    rows = trial_rows(summary)
    assert all(row["latency_ms"] > 0 and row["params"] > 0 for r in rows.values() for row in r)
    for reports in rows.values():  # measured once: every report carries the same figure
        assert len({row["latency_ms"] for row in reports}) == 1
    table = trials_table(summary)
    assert (table["best.latency_ms"] > 0).all() and set(table["config.num_layers"]) <= {1, 2}
    by_depth = table.groupby("config.num_layers")["best.params"].max()
    if len(by_depth) == 2:
        assert by_depth[1] < by_depth[2]  # a layer dropped: fewer weights
    assert summary["objectives"] == [
        {"metric": "accuracy", "mode": "max"},
        {"metric": "latency_ms", "mode": "min"},
    ]
    front = summary["pareto_front"]
    assert front and all(point["trial_id"] in set(table.trial_id) for point in front)
    fastest = min(table["best.latency_ms"])
    assert summary["best"]["metrics"]["latency_ms"] == fastest  # fastest_within 1.0: fastest
    assert summary["selection"]["trial_id"] == summary["best"]["trial_id"]
    saved = (Path(summary["run_dir"]) / "sweep.yaml").read_text()
    assert "- accuracy\n- latency_ms" in saved  # saved as written: metric: [accuracy, ...]
    _front_reaches_the_report_tensorboard_and_gate(summary, sweep)


def _front_reaches_the_report_tensorboard_and_gate(summary: dict[str, Any], sweep: Any) -> None:
    """The report plots the front; TensorBoard has both objectives per trial; the CLI hands
    the gate the candidate with the rule that picked it, and the gate can time it as served."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hpo.cli.serving import _candidate
    from hpo.core.storage import StorageDir
    from hpo.search.report import write_run_report
    from hpo.serve.measure import served_latency_ms

    run = StorageDir.at(summary["run_dir"])
    report = write_run_report(run)
    assert "## Accuracy against serving cost" in report.read_text()
    assert (report.parent / "front_latency_ms.png").stat().st_size > 0
    for trial_run in (Path(summary["run_dir"]) / "tensorboard" / "trials").iterdir():
        events = EventAccumulator(str(trial_run))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"final/accuracy", "final/latency_ms", "serving/latency_ms"} <= tags
    candidate = _candidate(run, sweep)
    assert candidate.trial_id == summary["best"]["trial_id"]
    assert candidate.select == {"fastest_within": 1.0}
    assert served_latency_ms(candidate.checkpoint, sweep.data, "torch", threads=1, repeats=5) > 0


def test_more_layers_than_the_model_has_is_refused_before_ray(
    tiny_model: str, tmp_path: Path
) -> None:
    from hpo.core.errors import UserError
    from hpo.search.prepare import prepare

    sweep = sweep_of(tiny_model, tmp_path, space={"num_layers": {"choice": [1, 3]}})
    with pytest.raises(UserError, match="space.num_layers: 3 layers, but .* has 2; keep 1 to 2"):
        prepare(sweep)


def test_a_taken_run_name_gets_the_next_free_suffix(tmp_path: Path) -> None:
    """A second `hpo run` of the same sweep file never writes into the first run's folder."""
    from hpo.search.runner import new_run_dir

    sweep = parse_sweep(tiny_sweep("unused-model", tmp_path / "runs"))
    first = new_run_dir(sweep)
    assert Path(first.location).name == "tiny"
    for taken in ("tiny", "tiny-2"):
        (tmp_path / "runs" / taken).mkdir(parents=True)
    assert Path(new_run_dir(sweep).location).name == "tiny-3"
    assert Path(new_run_dir(sweep, "other").location).name == "other"
