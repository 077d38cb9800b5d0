"""What users do today: `Trainer.hyperparameter_search(backend="optuna")` on the quickstart's
budget (4 trials, the same 2,000 SST-2 training sentences, 1 epoch each) and search space.

Prints one JSON line: wall seconds (the whole script, as a user times it) and the best
validation accuracy. `bench/quickstart_vs_trainer.py` runs it beside `hpo run`.
"""

from __future__ import annotations

import json
import os
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

from hpo.search.sweepfile import load_sweep  # noqa: E402
from hpo.trainables.data import load_splits  # noqa: E402
from hpo.trainables.models import resolve_model  # noqa: E402


def main() -> None:
    sweep = load_sweep("examples/quickstart.yaml")
    splits = load_splits(sweep.data)  # the very same 2,000 sentences as the quickstart
    model_source = resolve_model(sweep.model)
    tokenizer = AutoTokenizer.from_pretrained(model_source)

    def dataset(examples) -> Dataset:
        encoded = tokenizer(examples.texts, truncation=True, max_length=128)
        return Dataset.from_dict({**encoded, "labels": examples.labels.tolist()})

    train, validation = dataset(splits.train), dataset(splits.validation)

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(model_source, num_labels=2)

    def hp_space(trial):
        # the design card's example space (the same for both sides of the comparison)
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-4, log=True),
            "per_device_train_batch_size": trial.suggest_categorical(
                "per_device_train_batch_size", [16, 32]
            ),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
            # transformers 5 reads a float warmup_steps in [0, 1) as the warmup ratio
            "warmup_steps": trial.suggest_categorical("warmup_ratio", [0.0, 0.1]),
        }

    def accuracy(prediction) -> dict[str, float]:
        return {
            "accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())
        }

    args = TrainingArguments(
        output_dir=os.environ.get("BASELINE_OUT", "/tmp/hpo-baseline"),
        num_train_epochs=1,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        per_device_eval_batch_size=64,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        model_init=model_init,
        compute_metrics=accuracy,
    )
    best = trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=lambda metrics: metrics["eval_accuracy"],
        n_trials=4,
        direction="maximize",
        backend="optuna",
    )
    print(
        json.dumps(
            {
                "tool": "Trainer.hyperparameter_search(optuna)",
                "wall_s": round(time.perf_counter() - STARTED, 1),
                "best_accuracy": round(float(best.objective), 4),
                "best_config": best.hyperparameters,
                "torch_threads": int(np.int64(__import__("torch").get_num_threads())),
            }
        )
    )


if __name__ == "__main__":
    main()
