"""Taking a trained network out of a study: model bundles and portable files.

A bundle is a folder with the network's weights (``weights.pt``, loaded with
``weights_only=True``) and a manifest (``bundle.json``) holding its architecture, input
shape, class names and input statistics. :func:`load_model` rebuilds the network from it;
on request, a ``torch.export`` program and an ONNX graph are written beside the weights,
each run once and compared with the model.

Example:
    .. code-block:: python

        import optuna_nas

        model = optuna_nas.load_model("best-model")  # from `optuna-nas train-best --export`
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

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
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
]
