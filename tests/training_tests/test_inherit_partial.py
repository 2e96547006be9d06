"""Partial weight transfer (network morphisms) between parent and child architectures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from optuna_nas import spaces
from optuna_nas.training import WeightTransfer, inherit_weights, transfer_weights

# A 40-step sequence, like MNIST-1D, through the chain space's real modules.
INPUT_SHAPE = (40,)
CLASSES = 10


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> Iterator[None]:
    yield


def _layer(index: int, op: str = "conv", filters: int = 16, kernel: int = 3, **kw: int) -> dict:
    params: dict[str, Any] = {f"layer{index}/op": op}
    if op in ("conv", "sepconv"):
        params.update(
            {
                f"layer{index}/filters": filters,
                f"layer{index}/kernel_size": kernel,
                f"layer{index}/stride": kw.get("stride", 1),
                f"layer{index}/dilation": kw.get("dilation", 1),
            }
        )
    return params


def _chain(*layers: dict[str, Any], seed: int, **space_kw: Any) -> nn.Module:
    torch.manual_seed(seed)
    arch = {"n_layers": len(layers)}
    for layer in layers:
        arch.update(layer)
    model = spaces.ChainSpace(**space_kw).from_params(arch).build(INPUT_SHAPE, CLASSES)
    # Trained-looking batch-norm statistics, so that a mismatch in them would show.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def _same_function(parent: nn.Module, child: nn.Module) -> bool:
    x = torch.randn(16, *INPUT_SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(parent(x), child(x), atol=1e-5)


def _fresh_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize(
    ("parent_layer", "child_layer"),
    [
        # Wider: the consumer's new input columns are zero.
        (_layer(0, filters=16), _layer(0, filters=32)),
        # A larger kernel: the parent's in the centre, a zero border ("same" padding).
        (_layer(0, kernel=3), _layer(0, kernel=7)),
        # Both at once, strided and dilated.
        (
            _layer(0, kernel=3, stride=2, dilation=2),
            _layer(0, "conv", 64, kernel=5, stride=2, dilation=2),
        ),
        # A separable layer: depthwise and pointwise convolutions.
        (_layer(0, "sepconv", 16, 3), _layer(0, "sepconv", 32, 7)),
    ],
)
def test_widening_and_kernel_growth_keep_the_parent_function(
    parent_layer: dict[str, Any], child_layer: dict[str, Any]
) -> None:
    consumer = _layer(1, "sepconv" if "sepconv" in parent_layer.values() else "conv", 32)
    parent = _chain(parent_layer, consumer, seed=0)
    child = _chain(child_layer, consumer, seed=1)
    assert not _same_function(parent, child)

    done = transfer_weights(child, parent.state_dict())

    assert done.partial and not done.fresh
    assert _same_function(parent, child)


def test_widening_the_last_layer_keeps_the_classifier_function() -> None:
    parent = _chain(_layer(0, filters=16), seed=0)
    child = _chain(_layer(0, filters=64), seed=1)
    done = transfer_weights(child, parent.state_dict())
    assert "classifier.linear.weight" in done.partial
    assert torch.equal(child.classifier.linear.weight[:, 16:], torch.zeros(CLASSES, 48))
    assert _same_function(parent, child)


def test_widening_a_dense_layer_keeps_the_parent_function() -> None:
    kw = {"ops": ("dense", "identity")}
    parent = _chain({"layer0/op": "dense", "layer0/units": 32}, seed=0, **kw)
    child = _chain({"layer0/op": "dense", "layer0/units": 128}, seed=1, **kw)
    done = transfer_weights(child, parent.state_dict())
    # The first linear reads the flattened input, whose width did not change: its new
    # rows (output units) map, so it is transferred in part like the classifier.
    assert done.partial == {"layer0.0.weight", "layer0.0.bias", "classifier.linear.weight"}
    assert _same_function(parent, child)


def test_new_units_keep_their_fresh_values_and_new_inputs_are_zero() -> None:
    consumer = _layer(1, filters=32)
    parent = _chain(_layer(0, filters=16, kernel=3), consumer, seed=0)
    child = _chain(_layer(0, filters=32, kernel=5), consumer, seed=1)
    fresh = _fresh_copy(child)

    transfer_weights(child, parent.state_dict())

    state, before = child.state_dict(), parent.state_dict()
    # Channels 16-31 of layer0 are new: their filters and batch norm stay as initialised.
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(state[f"layer0.1.{name}"][16:], fresh[f"layer0.1.{name}"][16:])
        assert torch.equal(state[f"layer0.1.{name}"][:16], before[f"layer0.1.{name}"])
    assert torch.equal(state["layer0.0.weight"][16:], fresh["layer0.0.weight"][16:])
    # The old filters: the parent's 3-tap kernel in the middle of 5 taps, zero border.
    assert torch.equal(state["layer0.0.weight"][:16, :, 1:4], before["layer0.0.weight"])
    assert not state["layer0.0.weight"][:16, :, [0, 4]].any()
    # layer1 reads the new channels with zero weights.
    assert torch.equal(state["layer1.0.weight"][:, :16], before["layer1.0.weight"])
    assert not state["layer1.0.weight"][:, 16:].any()


def test_a_narrowed_layer_keeps_the_first_units_and_a_smaller_kernel_the_centre() -> None:
    consumer = _layer(1, filters=32)
    parent = _chain(_layer(0, filters=64, kernel=7), consumer, seed=0)
    child = _chain(_layer(0, filters=16, kernel=3), consumer, seed=1)

    done = transfer_weights(child, parent.state_dict())

    state, before = child.state_dict(), parent.state_dict()
    assert torch.equal(state["layer0.0.weight"], before["layer0.0.weight"][:16, :, 2:5])
    assert torch.equal(state["layer0.1.running_var"], before["layer0.1.running_var"][:16])
    assert torch.equal(state["layer1.0.weight"], before["layer1.0.weight"][:, :16])
    # An approximation, not the parent's function.
    assert not _same_function(parent, child)
    assert done.counts() == {"copied": len(state) - 6, "partial": 6, "fresh": 0}


def test_counts_name_every_tensor_once() -> None:
    parent = _chain(_layer(0, filters=16), _layer(1, filters=32), seed=0)
    child = _chain(_layer(0, filters=32), _layer(1, filters=32), _layer(2, filters=32), seed=1)
    done = transfer_weights(child, parent.state_dict())
    names = set(child.state_dict())
    assert done.copied | done.partial | done.fresh == names
    assert len(done.copied) + len(done.partial) + len(done.fresh) == len(names)
    # layer2 is new; layer0 is wider and layer1 reads it; the rest (layer1's batch norm,
    # layer0's step counter, the classifier) fits whole.
    assert done.fresh == {n for n in names if n.startswith("layer2.")}
    assert done.partial == {
        "layer0.0.weight",
        "layer0.1.weight",
        "layer0.1.bias",
        "layer0.1.running_mean",
        "layer0.1.running_var",
        "layer1.0.weight",
    }
    assert inherit_weights(child, parent.state_dict()) == len(done.inherited)
    assert isinstance(done, WeightTransfer)


def test_partial_false_copies_only_equal_shapes() -> None:
    parent = _chain(_layer(0, filters=16), seed=0)
    child = _chain(_layer(0, filters=32), seed=1)
    fresh = _fresh_copy(child)
    done = transfer_weights(child, parent.state_dict(), partial=False)
    assert not done.partial
    assert done.copied == {"layer0.1.num_batches_tracked", "classifier.linear.bias"}
    for name in done.fresh:
        assert torch.equal(child.state_dict()[name], fresh[name])


@pytest.mark.parametrize(("parent_op", "child_op"), [("conv", "sepconv"), ("sepconv", "conv")])
def test_an_op_change_starts_the_layer_fresh(parent_op: str, child_op: str) -> None:
    # On a one-channel input the depthwise kernel (1 x 1 x k) and a full convolution
    # (16 x 1 x k) agree in name and rank; the layer's layout tells them apart.
    parent = _chain(_layer(0, parent_op, 16), _layer(1, filters=32), seed=0)
    child = _chain(_layer(0, child_op, 16), _layer(1, filters=32), seed=1)
    fresh = _fresh_copy(child)
    done = transfer_weights(child, parent.state_dict())
    layer0 = {n for n in child.state_dict() if n.startswith("layer0.")}
    assert done.fresh == layer0
    for name in layer0:
        assert torch.equal(child.state_dict()[name], fresh[name])
    assert not done.partial


def _flat_net(width: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, width, 3, padding=1), nn.Flatten(), nn.Linear(width * 8, 5))


def test_a_linear_layer_after_a_flatten_does_not_guess_its_columns() -> None:
    # The flattened input mixes channels and positions: which column is which is ambiguous.
    parent, child = _flat_net(4, seed=0), _flat_net(6, seed=1)
    fresh = _fresh_copy(child)
    done = transfer_weights(child, parent.state_dict())
    assert done.partial == {"0.weight", "0.bias"}
    assert done.copied == {"2.bias"}
    assert done.fresh == {"2.weight"}
    assert torch.equal(child[2].weight, fresh["2.weight"])


def test_shapes_that_cannot_be_mapped_start_fresh() -> None:
    child = nn.Sequential(
        nn.Conv1d(4, 8, 3, groups=2),  # grouped, not depthwise
        nn.ConvTranspose1d(8, 4, 3),
        nn.LayerNorm(4),
    )
    fresh = _fresh_copy(child)
    state = {
        "0.weight": torch.ones(16, 2, 3),
        "0.bias": torch.ones(16),
        "1.weight": torch.ones(8, 2, 3),
        "2.weight": torch.ones(8),
        "2.bias": torch.ones(4, 2),  # another rank
    }
    done = transfer_weights(child, state)
    assert done.fresh == set(child.state_dict())
    for name, value in child.state_dict().items():
        assert torch.equal(value, fresh[name])
