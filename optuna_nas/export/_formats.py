"""Portable model files, torch.export programs and ONNX graphs, each checked once."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optuna_nas.export._bundle import MANIFEST, Bundle, BundleError, save_bundle

TOLERANCE = 1e-4
"""Largest absolute difference allowed between a portable file's logits and the model's,
relative to the logits' scale (at least 1)."""


def export_program(model: nn.Module, example: torch.Tensor, path: str | os.PathLike[str]) -> float:
    """Writes ``model`` as a :func:`torch.export.export` program (``.pt2``) and checks it.

    The batch axis is dynamic where the model allows it. The saved program is loaded back
    and run once on ``example``; its outputs must match the model's.

    Args:
        model: The network, in eval mode.
        example: One input batch, as the model takes it.
        path: The file to write.

    Returns:
        The largest absolute difference between the program's outputs and the model's.

    Raises:
        BundleError: If the model cannot be exported, or the program's outputs differ.
    """
    model = model.eval()
    try:
        program = _export(model, example)
        torch.export.save(program, os.fspath(path))
        loaded = torch.export.load(os.fspath(path)).module()
    except Exception as err:  # torch.export raises many kinds
        raise BundleError(f"{os.fspath(path)}: torch.export failed ({err})") from None
    with torch.no_grad():
        return _check(path, model(example), loaded(example))


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike[str]) -> float:
    """Writes ``model`` as an ONNX graph and checks it with ONNX Runtime.

    Needs the ``export`` extra (``onnx``, ``onnxscript``, ``onnxruntime``). The batch axis is
    dynamic. The graph is run once on ``example`` by ONNX Runtime on the CPU; its outputs
    must match the model's.

    Args:
        model: The network, in eval mode.
        example: One input batch, as the model takes it.
        path: The file to write (``.onnx``).

    Returns:
        The largest absolute difference between ONNX Runtime's outputs and the model's.

    Raises:
        BundleError: If a package is missing, the export fails, or the outputs differ.
    """
    try:
        import onnxruntime
    except ImportError:
        raise BundleError(
            "ONNX export needs onnx, onnxscript and onnxruntime; install them with "
            "pip install 'optuna-nas[export]'"
        ) from None
    model = model.eval().cpu()
    example = example.cpu()
    try:
        batch = torch.export.Dim("batch", min=1)
        with warnings.catch_warnings():  # the exporter's own deprecation notices
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            _onnx_export(model, example, path, batch)
        session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        (outputs,) = session.run(["logits"], {"input": example.numpy()})
    except BundleError:
        raise
    except Exception as err:
        raise BundleError(f"{os.fspath(path)}: ONNX export failed ({err})") from None
    with torch.no_grad():
        return _check(path, model(example), torch.from_numpy(outputs))


def _onnx_export(
    model: nn.Module, example: torch.Tensor, path: str | os.PathLike[str], batch: Any
) -> None:
    torch.onnx.export(
        model,
        (example,),
        os.fspath(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def _export(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception:  # a model that specialises on the batch size: export it static
        return torch.export.export(model, (example,))


def _check(path: str | os.PathLike[str], expected: torch.Tensor, actual: torch.Tensor) -> float:
    difference = float((expected.float().cpu() - actual.float().cpu()).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    if not difference <= TOLERANCE * scale:
        raise BundleError(
            f"{Path(path).name}: its outputs differ from the model's by {difference:.3g} "
            f"(allowed {TOLERANCE * scale:.3g}); the file was written but should not be used"
        )
    return difference


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    bundle: Bundle,
    *,
    program: bool = False,
    onnx: bool = False,
    example: torch.Tensor | None = None,
) -> Path:
    """Writes a bundle and, on request, a ``torch.export`` program and an ONNX graph in it.

    The portable files take standardised inputs, as the network does; the manifest's
    ``input_mean`` and ``input_std`` say how to standardise raw ones. Each portable file is
    run once on ``example`` and checked against the model before the manifest lists it.

    Args:
        model: The trained network.
        path: The bundle folder.
        bundle: The manifest (see :class:`Bundle`).
        program: Also write ``model.pt2`` with :func:`torch.export.export`.
        onnx: Also write ``model.onnx`` (needs the ``export`` extra).
        example: An input batch for the checks; random normal inputs of
            ``bundle.input_shape`` (batch 2) by default.

    Returns:
        The bundle folder.

    Raises:
        BundleError: If a file cannot be written or its outputs differ from the model's.

    Example:
        .. code-block:: python

            import numpy as np
            import torch

            import optuna_nas
            from optuna_nas import export, spaces

            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            arch = space.from_params(space.sample_params(np.random.RandomState(0)))
            model = arch.build((1, 8, 8), 10)  # train it first, e.g. with training.fit
            bundle = export.Bundle(arch.to_dict(), (1, 8, 8), 10)
            export.export_model(model, "best-model", bundle, program=True)
            program = torch.export.load("best-model/model.pt2").module()
            logits = program(torch.randn(4, 1, 8, 8))
    """
    folder = save_bundle(model, path, bundle)
    model = model.eval().cpu()
    if example is None:
        example = torch.randn(2, *bundle.input_shape, generator=torch.Generator().manual_seed(0))
    files: dict[str, str] = {}
    if program:
        export_program(model, example, folder / "model.pt2")
        files["export"] = "model.pt2"
    if onnx:
        export_onnx(model, example, folder / "model.onnx")
        files["onnx"] = "model.onnx"
    if files:
        (folder / MANIFEST).write_text(replace(bundle, files=files).to_json() + "\n")
    return folder
