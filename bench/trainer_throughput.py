"""Training throughput of one trial: hpo's loop (a one-trial `hpo run` of the quickstart, so
inside a real Tune trial with the threads hpo gives it) against a plain Hugging Face `Trainer`
and a bare length-grouped PyTorch loop, on the same pretrained MiniLM, the same 2,000 SST-2
sentences, batch size, epochs, learning rate and torch threads; alternating, `--rounds` times.

    python bench/trainer_throughput.py [--rounds 3] [--samples 2000]

Each side runs in its own process and reports training samples/s (the training loop alone,
without evaluation) and validation accuracy. Writes bench/results/trainer_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quickstart_runs import REPO, run_quickstart
from results import spread, write_result

BATCH_SIZE, LEARNING_RATE, SEED, MAX_LENGTH = 16, 1e-4, 0, 128
THREADS = os.cpu_count() or 1  # a trial alone on the machine gets every core
GOAL_VS_TRAINER, GOAL_VS_BARE, ACCURACY_POINTS = 1.5, 0.9, 1.0


def run_hpo(samples: int) -> dict:
    overrides = {
        "search.num_samples": "1",
        "search.max_concurrent": "1",
        "scheduler": "{name: fifo, max_epochs: 1}",
        "data.max_train_samples": str(samples),
        "train.evals_per_epoch": "1",
        "search.algorithm": "random",
        # one fixed point (a space needs one searched dimension: a choice of one seed)
        "space": f"{{learning_rate: {LEARNING_RATE}, batch_size: {BATCH_SIZE}, "
        f"seed: {{choice: [{SEED}]}}}}",
    }
    with tempfile.TemporaryDirectory() as storage:
        run_quickstart(storage, overrides)
        run_dir = Path(storage) / "quickstart"
        summary = json.loads((run_dir / "summary.json").read_text())
        # the trial's own report (Tune's result.json): the training loop's samples/s
        (results,) = run_dir.glob("*/result.json")
        report = json.loads(results.read_text().strip().splitlines()[-1])
    return {
        "samples_per_s": report["train_samples_per_s"],
        "accuracy": summary["best"]["metric"],
        "threads": summary.get("threads_per_worker"),
    }


def _data(samples: int):
    """The very data the quickstart trains on, tokenized."""
    from transformers import AutoTokenizer

    from hpo.search.sweepfile import load_sweep
    from hpo.trainables.data import load_splits
    from hpo.trainables.models import resolve_model

    sweep = load_sweep(REPO / "examples" / "quickstart.yaml", [f"data.max_train_samples={samples}"])
    splits = load_splits(sweep.data)
    source = resolve_model(sweep.model)
    tokenizer = AutoTokenizer.from_pretrained(source)

    def encode(split):
        encoded = tokenizer(split.texts, truncation=True, max_length=MAX_LENGTH)
        return encoded["input_ids"], [int(label) for label in split.labels]

    return source, tokenizer, encode(splits.train), encode(splits.validation)


def _model(source: str):
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(SEED)
    return AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)


def run_trainer(samples: int) -> dict:
    """A plain `Trainer`: its defaults, with our batch size, learning rate, epochs and seed."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    source, tokenizer, (train_ids, train_labels), (val_ids, val_labels) = _data(samples)

    def dataset(ids, labels) -> Dataset:
        return Dataset.from_dict({"input_ids": ids, "labels": labels})

    def accuracy(prediction) -> dict[str, float]:
        hits = prediction.predictions.argmax(-1) == prediction.label_ids
        return {"accuracy": float(hits.mean())}

    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(
            model=_model(source),
            args=TrainingArguments(
                output_dir=output,
                num_train_epochs=1,
                per_device_train_batch_size=BATCH_SIZE,
                per_device_eval_batch_size=64,
                learning_rate=LEARNING_RATE,
                seed=SEED,
                save_strategy="no",
                report_to=[],
                disable_tqdm=True,
            ),
            train_dataset=dataset(train_ids, train_labels),
            eval_dataset=dataset(val_ids, val_labels),
            processing_class=tokenizer,
            compute_metrics=accuracy,
        )
        trained = trainer.train()
        evaluated = trainer.evaluate()
    return {
        "samples_per_s": trained.metrics["train_samples_per_second"],
        "accuracy": evaluated["eval_accuracy"],
    }


def _padded(ids: list[list[int]], rows, pad: int):
    import torch

    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    for row, index in enumerate(rows):
        input_ids[row, : len(ids[index])] = torch.tensor(ids[index])
    return input_ids, (input_ids != pad).long()


def run_bare(samples: int) -> dict:
    """A bare loop: length-grouped batches (sorted in chunks of 50 batches, then shuffled),
    AdamW with a linear decay, no framework."""
    import numpy as np
    import torch

    source, tokenizer, (train_ids, train_labels), (val_ids, val_labels) = _data(samples)
    model = _model(source)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(train_ids))
    chunks = np.array_split(order, max(1, math.ceil(len(order) / (50 * BATCH_SIZE))))
    order = np.concatenate([c[np.argsort([-len(train_ids[i]) for i in c])] for c in chunks])
    batches = [order[i : i + BATCH_SIZE] for i in range(0, len(order), BATCH_SIZE)]
    batches = [batches[i] for i in rng.permutation(len(batches))]
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / len(batches))
    )
    labels = torch.tensor(train_labels)
    model.train()
    started = time.perf_counter()
    for rows in batches:
        input_ids, mask = _padded(train_ids, rows, tokenizer.pad_token_id)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels[rows]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    model.eval()
    hits = 0
    with torch.inference_mode():
        for start in range(0, len(val_ids), 64):
            rows = list(range(start, min(start + 64, len(val_ids))))
            input_ids, mask = _padded(val_ids, rows, tokenizer.pad_token_id)
            predicted = model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1)
            hits += int((predicted == torch.tensor([val_labels[i] for i in rows])).sum())
    return {"samples_per_s": len(train_ids) / seconds, "accuracy": hits / len(val_ids)}


def in_subprocess(side: str, samples: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--side", side, "--samples", str(samples)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--side", choices=["trainer", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # one side, in this process
        import torch

        torch.set_num_threads(THREADS)
        run = run_trainer if args.side == "trainer" else run_bare
        print(json.dumps(run(args.samples)))
        return
    sides: dict[str, list[dict]] = {"hpo": [], "trainer": [], "bare": []}
    for round_ in range(args.rounds):
        order = ["hpo", "trainer", "bare"]
        for side in order[round_ % 3 :] + order[: round_ % 3]:
            run = run_hpo(args.samples) if side == "hpo" else in_subprocess(side, args.samples)
            sides[side].append(run)
            print(f"round {round_ + 1} {side}: {json.dumps(run)}", flush=True)
    figures = {
        side: {
            "samples_per_s": spread([r["samples_per_s"] for r in runs]),
            "accuracy": spread([r["accuracy"] for r in runs]),
        }
        for side, runs in sides.items()
    }
    speed = {side: figures[side]["samples_per_s"]["median"] for side in sides}
    accuracy = {side: figures[side]["accuracy"]["median"] for side in sides}
    vs_trainer, vs_bare = speed["hpo"] / speed["trainer"], speed["hpo"] / speed["bare"]
    accuracy_gap = (accuracy["hpo"] - accuracy["trainer"]) * 100
    figures.update(
        samples=args.samples,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        threads=THREADS,
        hpo_trial_threads=sides["hpo"][0]["threads"],
        ratio_vs_trainer=round(vs_trainer, 3),
        ratio_vs_bare=round(vs_bare, 3),
        accuracy_points_vs_trainer=round(accuracy_gap, 2),
    )
    path = write_result(
        "trainer_throughput",
        goal=f"≥ {GOAL_VS_TRAINER}× a plain Trainer's training samples/s at its accuracy "
        f"(± {ACCURACY_POINTS:.0f} point), ≥ {GOAL_VS_BARE}× a bare length-grouped loop",
        met=vs_trainer >= GOAL_VS_TRAINER
        and vs_bare >= GOAL_VS_BARE
        and accuracy_gap >= -ACCURACY_POINTS,
        ratio=round(vs_trainer, 3),
        figures=figures,
        summary=f"{vs_trainer:.2f}× the Trainer ({speed['hpo']:.1f} vs {speed['trainer']:.1f} "
        f"samples/s), {vs_bare:.2f}× the bare loop; accuracy {accuracy['hpo']:.3f} vs "
        f"{accuracy['trainer']:.3f}",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
