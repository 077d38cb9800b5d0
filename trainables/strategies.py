"""Fine-tuning strategies: which weights of the model train.

    full     every weight
    freeze   all but the embeddings and the lowest `freeze_layers` encoder layers
    bitfit   only the biases and the classifier head (Ben Zaken et al., 2022)
    lora     low-rank adapters on the named linear layers, and the head (peft)

A LoRA trial trains a peft model, but its checkpoints hold the merged weights, so that
`transformers.pipeline`, the promotion gate and the Serve deployment load them like any other.
Resuming needs the adapters themselves: `trained_state` goes into the training state and
`load_trained_state` puts it back into a freshly wrapped base model.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch

from hpo.trainables.config import Hyperparameters

_LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block)\.(\d+)\.")


def _head_names(model: Any) -> list[str]:
    """Parameters outside the base model: the classifier head, whatever its name."""
    prefix = f"{model.base_model_prefix}."
    return [name for name, _ in model.named_parameters() if not name.startswith(prefix)]


def _encoder_layers(model: Any) -> int:
    found = (_LAYER_INDEX.search(name) for name, _ in model.named_parameters())
    indices = {int(match[1]) for match in found if match}
    return max(indices) + 1 if indices else 0


def _freeze(model: Any, layers: int | None) -> None:
    total = _encoder_layers(model)
    frozen = total // 2 if layers is None else layers
    if frozen > total:
        raise ValueError(f"freeze_layers={frozen}, but the model has only {total} encoder layers")
    for name, parameter in model.named_parameters():
        layer = _LAYER_INDEX.search(name)
        if "embeddings" in name or (layer is not None and int(layer[1]) < frozen):
            parameter.requires_grad_(False)


def _bitfit(model: Any) -> None:
    head = set(_head_names(model))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in head or name.endswith("bias"))


def _lora(model: Any, hp: Hyperparameters) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    targets = hp.lora_targets if hp.lora_targets == "all-linear" else hp.lora_targets.split(",")
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=targets,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # peft names the target modules it could not find
        raise ValueError(f"lora_targets={hp.lora_targets!r}: {err}") from None


def apply_strategy(model: Any, hp: Hyperparameters) -> Any:
    """The model to train under `hp.strategy`: the same model with some weights frozen, or
    (lora) a peft model wrapping it."""
    match hp.strategy:
        case "full":
            return model
        case "freeze":
            _freeze(model, hp.freeze_layers)
            return model
        case "bitfit":
            _bitfit(model)
            return model
        case "lora":
            return _lora(model, hp)
    raise AssertionError(f"unhandled strategy {hp.strategy}")


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def is_adapted(model: Any) -> bool:
    """Whether `model` is a peft model (lora): its checkpoints merge the adapters."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def model_to_save(model: Any) -> Any:
    """What a checkpoint holds: the model itself, or for lora a merged copy (a plain
    transformers model; the trained one keeps its adapters)."""
    if not is_adapted(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def trained_state(model: Any) -> dict[str, torch.Tensor] | None:
    """For lora, the adapters and the head (what resuming needs besides the base model)."""
    if not is_adapted(model):
        return None
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def load_trained_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, state)
