"""Linear layers packed for oneDNN: the same logits as the model they come from, its weights
shared rather than copied, the model itself left as it was."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForSequenceClassification

from hpo.trainables.packed import PackedLinear, can_pack, packed_linears

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN"
)


@pytest.fixture(scope="module")
def model(tiny_model: str) -> torch.nn.Module:
    return AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()


@pytest.fixture(scope="module")
def packed(model: torch.nn.Module) -> torch.nn.Module:
    return packed_linears(model)


def test_every_linear_layer_is_packed_and_the_model_is_untouched(
    model: torch.nn.Module, packed: torch.nn.Module
) -> None:
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert linears
    assert not any(type(m) is torch.nn.Linear for m in packed.modules())
    assert sum(isinstance(m, PackedLinear) for m in packed.modules()) == len(linears)
    assert all(type(m) is torch.nn.Linear for m in linears)  # the original keeps its layers


def test_the_packed_copy_shares_the_other_weights(
    model: torch.nn.Module, packed: torch.nn.Module
) -> None:
    ours = {p.data_ptr() for p in packed.parameters()}
    assert ours  # embeddings, layer norms
    assert ours <= {p.data_ptr() for p in model.parameters()}


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 6),
    length=st.integers(1, 24),
    padding=st.lists(st.integers(0, 23), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_packed_logits_equal_the_models(
    model: torch.nn.Module,
    packed: torch.nn.Module,
    rows: int,
    length: int,
    padding: list[int],
    seed: int,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, model.config.vocab_size, (rows, length), generator=generator)
    mask = torch.ones(rows, length, dtype=torch.long)
    for row in range(rows):
        mask[row, length - min(padding[row], length - 1) :] = 0
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits
        actual = packed(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_a_model_that_cannot_be_packed_is_returned_as_it_is(model: torch.nn.Module) -> None:
    as_double = AutoModelForSequenceClassification.from_config(model.config).double()
    assert not can_pack(as_double)
    assert packed_linears(as_double) is as_double
