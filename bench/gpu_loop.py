"""The training loop on a GPU: where the model and batches live, whether AMP autocasts, and
training samples/s with and without AMP, for a MiniLM-L6-shaped BERT on SST-2 sentences.

    python bench/gpu_loop.py [--samples 20000] [--batch-sizes 64 256]

Weights are random (the config of the packaged MiniLM, or a copy of it in --model-config):
throughput does not depend on them, and a GPU machine without the pip package can run this.
Ray is not needed: the loop runs behind a recording session, as in tests/trainables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from hpo.trainables.config import DataConfig, Hyperparameters, TrainConfig
from hpo.trainables.data import load_splits
from hpo.trainables.encoding import encode
from hpo.trainables.job import TrainJob
from hpo.trainables.loop import train_model


class DeviceProbe:
    """A session on one device that keeps the reports and checks where tensors live."""

    world_rank = 0
    world_size = 1
    checkpoints_ahead_of_tune = False

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reports: list[dict] = []

    def restored_checkpoint(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.reports.append(metrics)


def build_model(folder: Path, config_source: str) -> str:
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    config = AutoConfig.from_pretrained(config_source)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(config_source).save_pretrained(folder)
    return str(folder)


def run(
    model: str,
    data,
    device: torch.device,
    amp: bool,
    batch_size: int,
    pad_multiple: int | str = "auto",
) -> dict:
    import transformers.models.bert.modeling_bert as bert

    seen: dict[str, str] = {}
    original_forward = bert.BertSelfAttention.forward

    def probe(self, hidden_states, *args, **kwargs):  # records where and in what dtype
        output = original_forward(self, hidden_states, *args, **kwargs)
        seen.setdefault("device", str(hidden_states.device))
        first = output[0] if isinstance(output, tuple) else output
        seen.setdefault("attention_dtype", str(first.dtype))
        return output

    bert.BertSelfAttention.forward = probe
    try:
        job = TrainJob(
            model_source=model,
            offline=True,
            metric="accuracy",
            mode="max",
            max_epochs=1,
            train=TrainConfig(
                evals_per_epoch=1, amp=amp, eval_batch_size=256, pad_to_multiple_of=pad_multiple
            ),
            threads=4,
            use_gpu=device.type == "cuda",
            launcher="in_trial",
            run_dir="/unused",
        )
        session = DeviceProbe(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        train_model(Hyperparameters(batch_size=batch_size, learning_rate=1e-4), job, data, session)
        wall = time.perf_counter() - started
    finally:
        bert.BertSelfAttention.forward = original_forward
    report = session.reports[-1]
    return {
        "amp": amp,
        "batch_size": batch_size,
        "pad_to_multiple_of": pad_multiple,
        "train_samples_per_s": round(report["train_samples_per_s"], 1),
        "trial_wall_s": round(wall, 1),
        "model_device": seen.get("device"),
        "attention_dtype": seen.get("attention_dtype"),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)
        if device.type == "cuda"
        else None,
        "val_accuracy_random_init": round(report["accuracy"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument(
        "--pad-multiples",
        nargs="+",
        default=["auto"],
        help="also time these batch-length roundings (bf16 only)",
    )
    parser.add_argument("--data", default=os.environ.get("HPO_DATA", "../shared/data"))
    parser.add_argument(
        "--model-config", default=None, help="folder with MiniLM's config.json and tokenizer files"
    )
    args = parser.parse_args()

    if args.model_config is None:
        from hpo.trainables.models import resolve_model

        args.model_config = resolve_model("minilm")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(Path(folder), args.model_config)
        from transformers import AutoTokenizer

        splits = load_splits(
            DataConfig(
                train=f"{args.data}/sst2/train.csv",
                validation=f"{args.data}/sst2/validation.csv",
                text="sentence",
                max_train_samples=args.samples,
            )
        )
        data = encode(splits, AutoTokenizer.from_pretrained(model), max_length=128)
        results = [
            run(model, data, device, amp, batch_size)
            for batch_size in args.batch_sizes
            for amp in (False, True)
        ]
        padding = [
            run(model, data, device, True, args.batch_sizes[-1], pad if pad == "auto" else int(pad))
            for pad in args.pad_multiples
            if pad != "auto"
        ]
    speedups = {
        f"batch_{fp32['batch_size']}": round(
            bf16["train_samples_per_s"] / fp32["train_samples_per_s"], 2
        )
        for fp32, bf16 in zip(results[::2], results[1::2], strict=True)
    }
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "torch": torch.__version__,
                "runs": results,
                "amp_speedup": speedups,
                "bf16_by_padding": padding,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
