"""Model bundles: a trained network's weights and architecture in one folder, and back."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

BUNDLE_FORMAT = "optuna-nas-bundle"
"""The ``format`` field of a bundle's ``bundle.json``."""

BUNDLE_VERSION = 1
"""The layout version this release writes and reads."""

MANIFEST = "bundle.json"
WEIGHTS = "weights.pt"


class BundleError(ValueError):
    """A bundle cannot be written or read; the message names the path and the fix."""


@dataclass(frozen=True)
class Bundle:
    """What a bundle folder holds besides the weights (its ``bundle.json``).

    Attributes:
        architecture: :meth:`optuna_nas.Architecture.to_dict` of the network, with the
            space configuration it was built with (scaled cells or channels included).
        input_shape: Shape of one input without the batch axis.
        num_classes: Number of output logits.
        width_multiplier: Width factor the network was built with.
        input_mean: Per-channel mean to subtract from raw inputs, or ``None``.
        input_std: Per-channel standard deviation to divide by, or ``None``.
        classes: Class names in logit order, or ``None``.
        metadata: Free-form facts about the run (dataset, accuracy, command, ...).
        files: The other files of the bundle by kind (``"export"``, ``"onnx"``).
    """

    architecture: Mapping[str, Any]
    input_shape: tuple[int, ...]
    num_classes: int
    width_multiplier: float = 1.0
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The manifest as JSON, with the format and version fields."""
        fields = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "architecture": dict(self.architecture),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "width_multiplier": self.width_multiplier,
            "input_mean": None if self.input_mean is None else list(self.input_mean),
            "input_std": None if self.input_std is None else list(self.input_std),
            "classes": None if self.classes is None else list(self.classes),
            "metadata": dict(self.metadata),
            "files": dict(self.files),
        }
        return json.dumps(fields, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "bundle.json") -> Bundle:
        """Reads a manifest; raises :class:`BundleError` for another format or version."""
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as err:
            raise BundleError(f"{where}: not JSON ({err}); export the model again") from None
        if not isinstance(fields, dict) or fields.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{where}: not an optuna-nas bundle manifest")
        if fields.get("version") != BUNDLE_VERSION:
            raise BundleError(
                f"{where}: bundle version {fields.get('version')} is not {BUNDLE_VERSION}, the "
                "one this optuna-nas reads; load it with the release that wrote it"
            )

        def optional(key: str) -> tuple[Any, ...] | None:
            value = fields.get(key)
            return None if value is None else tuple(value)

        return cls(
            architecture=fields["architecture"],
            input_shape=tuple(fields["input_shape"]),
            num_classes=int(fields["num_classes"]),
            width_multiplier=float(fields.get("width_multiplier", 1.0)),
            input_mean=optional("input_mean"),
            input_std=optional("input_std"),
            classes=optional("classes"),
            metadata=fields.get("metadata", {}),
            files=fields.get("files", {}),
        )


class Standardize(nn.Module):
    """Shifts and scales each channel (dimension 1): ``(x - mean) / std``, as float32.

    Put before a network trained on standardised inputs, it takes raw inputs: pixels 0-255
    for images the dataset held as uint8.

    Args:
        mean: Per-channel mean, ``C``.
        std: Per-channel standard deviation, ``C``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        return (x.to(torch.float32) - self.mean.view(view)) / self.std.view(view)


def save_bundle(
    model: nn.Module,
    path: str | os.PathLike[str],
    bundle: Bundle,
) -> Path:
    """Writes ``model``'s weights and ``bundle``'s manifest into the folder ``path``.

    The weights are the model's ``state_dict`` saved with :func:`torch.save`, read back by
    :func:`load_model` with ``weights_only=True``, so loading a bundle runs no pickled code.

    Args:
        model: The trained network, built from ``bundle.architecture``.
        path: The bundle folder; created if missing. Files of an earlier bundle there are
            replaced.
        bundle: The manifest.

    Returns:
        The folder.

    Raises:
        BundleError: If the architecture does not rebuild into a network with the
            model's tensors, so the bundle could not be loaded.
    """
    from optuna_nas.spaces import Architecture

    rebuilt = Architecture.from_dict(bundle.architecture).build(
        bundle.input_shape, bundle.num_classes, width_multiplier=bundle.width_multiplier
    )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    expected = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in state.items()}:
        raise BundleError(
            f"{os.fspath(path)}: the architecture does not rebuild into this model (the tensor "
            "names or shapes differ); pass the architecture, input shape and width it was built "
            "with"
        )
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / WEIGHTS)
    (folder / MANIFEST).write_text(bundle.to_json() + "\n")
    return folder


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    """The manifest of the bundle folder ``path``.

    Raises:
        BundleError: If ``path`` holds no bundle or one of another format.
    """
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        raise BundleError(
            f"{os.fspath(path)}: no {MANIFEST}; pass the folder that "
            "`optuna-nas train-best --export` or optuna_nas.export.save_bundle wrote"
        )
    return Bundle.from_json(manifest.read_text(), where=str(manifest))


def load_model(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    raw_inputs: bool = False,
) -> nn.Module:
    """Rebuilds the network of a bundle with its trained weights, in eval mode.

    Args:
        path: The bundle folder (see :func:`save_bundle`).
        map_location: Device to load the weights to.
        raw_inputs: Put a :class:`Standardize` layer with the bundle's statistics in front,
            so the model takes inputs as the data holds them (pixels 0-255 for image
            folders) rather than standardised ones.

    Returns:
        The network, or ``Standardize`` followed by it.

    Raises:
        BundleError: If the folder is not a bundle, its weights are missing, or they do not
            fit the architecture.

    Example:
        .. code-block:: python

            import numpy as np
            import torch

            import optuna_nas
            from optuna_nas import export, spaces

            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            arch = space.from_params(space.sample_params(np.random.RandomState(0)))
            model = arch.build((1, 8, 8), 10)  # train it first, e.g. with training.fit
            export.save_bundle(model, "best-model", export.Bundle(arch.to_dict(), (1, 8, 8), 10))
            restored = optuna_nas.load_model("best-model")
            logits = restored(torch.randn(4, 1, 8, 8))
    """
    from optuna_nas.spaces import Architecture

    bundle = read_bundle(path)
    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise BundleError(f"{weights}: missing; export the model again")
    model = Architecture.from_dict(bundle.architecture).build(
        bundle.input_shape, bundle.num_classes, width_multiplier=bundle.width_multiplier
    )
    state = torch.load(weights, map_location=map_location, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise BundleError(f"{weights}: does not fit the architecture ({err})") from None
    model.to(map_location).eval()
    if raw_inputs:
        if bundle.input_mean is None or bundle.input_std is None:
            raise BundleError(
                f"{os.fspath(path)}: the bundle records no input statistics; standardise the "
                "inputs yourself and load with raw_inputs=False"
            )
        model = nn.Sequential(Standardize(bundle.input_mean, bundle.input_std), model)
        model.to(map_location).eval()
    return model
