"""Taking results out of a study: model bundles, portable files and reports.

A bundle is a folder with the network's weights (``weights.pt``, loaded with
``weights_only=True``) and a manifest (``bundle.json``) holding its architecture, input
shape, class names and input statistics. :func:`load_model` rebuilds the network from it;
on request, a ``torch.export`` program and an ONNX graph are written beside the weights,
each run once and compared with the model. :func:`write_report` turns a study into
Markdown with plots.

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
        # Later, anywhere (`optuna-nas train-best --export` writes such a folder too):
        restored = optuna_nas.load_model("best-model")
        logits = restored(torch.randn(4, 1, 8, 8))
"""

from __future__ import annotations

from optuna_nas.export._bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    Bundle,
    BundleError,
    Standardize,
    load_model,
    read_bundle,
    save_bundle,
)
from optuna_nas.export._formats import TOLERANCE, export_model, export_onnx, export_program
from optuna_nas.export._report import REPORT_FORMATS, write_report

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "REPORT_FORMATS",
    "TOLERANCE",
    "Bundle",
    "BundleError",
    "Standardize",
    "export_model",
    "export_onnx",
    "export_program",
    "load_model",
    "read_bundle",
    "save_bundle",
    "write_report",
]
