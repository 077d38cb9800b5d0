"""What the driver does once per sweep, before Ray starts: resolve the model and read and
tokenize the data, so that every user error surfaces first and every trial shares one copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpo.core.errors import UserError
from hpo.search.sweep import Sweep
from hpo.trainables.data import load_splits
from hpo.trainables.encoding import EncodedData, encode
from hpo.trainables.models import check_model, hub_reachable, resolve_model


@dataclass
class Prepared:
    """What the driver builds once per sweep and every trial shares.

    Attributes:
        model_source: a local folder or Hub id.
        offline: the Hub is unreachable: models load from the local Hub cache only.
        data: every split, tokenized.
        sources: the file or hub: source each split came from.
    """

    model_source: str
    offline: bool
    data: EncodedData
    sources: dict[str, str]


def prepare(sweep: Sweep) -> Prepared:
    """Resolves the model and tokenizes every split: user errors surface before Ray starts."""
    from transformers import AutoTokenizer

    model_source = resolve_model(sweep.model)
    offline = not Path(model_source).is_dir() and not hub_reachable()
    check_model(model_source, sweep.model, offline=offline)
    _check_num_layers(sweep, model_source, offline)
    splits = load_splits(sweep.data)
    tokenizer = AutoTokenizer.from_pretrained(model_source, local_files_only=offline)
    data = encode(splits, tokenizer, sweep.train.max_length)
    return Prepared(model_source, offline, data, splits.sources)


def _check_num_layers(sweep: Sweep, model_source: str, offline: bool) -> None:
    """`num_layers` values that the model is deep enough to keep (a range's bounds, or the
    values listed)."""
    from transformers import AutoConfig

    dim = sweep.space.get("num_layers")
    if dim is None or dim.kind not in ("constant", "choice", "grid", "randint"):
        return
    depth = getattr(
        AutoConfig.from_pretrained(model_source, local_files_only=offline),
        "num_hidden_layers",
        None,
    )
    if depth is None:
        raise UserError(f"space.num_layers: {sweep.model} does not say how many layers it has")
    if max(dim.args) > depth:
        raise UserError(
            f"space.num_layers: {max(dim.args)} layers, but {sweep.model} has {depth}; keep "
            f"1 to {depth}"
        )
