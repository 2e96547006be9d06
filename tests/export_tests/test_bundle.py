"""Model bundles and portable files: written, loaded back, outputs equal to the model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import optuna_nas
from optuna_nas import data, export, spaces


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, optuna_nas.Architecture, data.Dataset]:
    dataset = data.load("digits")
    space = spaces.create("nb201", channels=4, cells_per_stage=1)
    arch = space.from_params(space.sample_params(np.random.RandomState(3)))
    torch.manual_seed(0)
    model = arch.build(dataset.input_shape, dataset.num_classes)
    optuna_nas.training.fit(model, dataset, epochs=1)
    return model.eval(), arch, dataset


def _bundle(arch: optuna_nas.Architecture, dataset: data.Dataset) -> export.Bundle:
    return export.Bundle(
        arch.to_dict(),
        dataset.input_shape,
        dataset.num_classes,
        input_mean=dataset.input_mean,
        input_std=dataset.input_std,
        metadata={"test_accuracy": 0.5},
    )


def test_bundle_round_trip(tmp_path: Path, trained) -> None:
    model, arch, dataset = trained
    folder = export.save_bundle(model, tmp_path / "b", _bundle(arch, dataset))
    manifest = json.loads((folder / "bundle.json").read_text())
    assert manifest["format"] == "optuna-nas-bundle"
    assert manifest["metadata"]["test_accuracy"] == 0.5
    loaded = optuna_nas.load_model(folder)
    assert not loaded.training
    x = dataset.test.x[:16]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        # raw_inputs takes the data as read: digits pixels scaled to [0, 1].
        raw = x * dataset.input_std[0] + dataset.input_mean[0]
        standardizing = optuna_nas.load_model(folder, raw_inputs=True)
        assert torch.allclose(standardizing(raw), model(x), atol=1e-5)


def test_bundle_refuses_a_model_of_another_architecture(tmp_path: Path, trained) -> None:
    model, arch, dataset = trained
    wider = dict(arch.to_dict(), config={"channels": 8, "cells_per_stage": 1})
    with pytest.raises(export.BundleError, match="does not rebuild into this model"):
        export.save_bundle(model, tmp_path / "b", export.Bundle(wider, dataset.input_shape, 10))
    assert not (tmp_path / "b").exists()


def test_loading_bad_bundles(tmp_path: Path, trained) -> None:
    model, arch, dataset = trained
    with pytest.raises(export.BundleError, match=r"no bundle\.json"):
        optuna_nas.load_model(tmp_path)
    folder = export.save_bundle(model, tmp_path / "b", _bundle(arch, dataset))
    manifest = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(export.BundleError, match="version 99"):
        optuna_nas.load_model(folder)
    (folder / "bundle.json").write_text(json.dumps(manifest))
    torch.save({"bogus": torch.zeros(1)}, folder / "weights.pt")
    with pytest.raises(export.BundleError, match="does not fit the architecture"):
        optuna_nas.load_model(folder)


def test_portable_files_match_the_model(tmp_path: Path, trained) -> None:
    pytest.importorskip("onnxruntime")
    model, arch, dataset = trained
    folder = export.export_model(
        model, tmp_path / "b", _bundle(arch, dataset), program=True, onnx=True
    )
    files = export.read_bundle(folder).files
    assert files == {"export": "model.pt2", "onnx": "model.onnx"}
    x = dataset.test.x[:7]  # another batch size than the export's example
    program = torch.export.load(str(folder / "model.pt2")).module()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(program(x), expected, atol=1e-4)
    assert np.allclose(onnx_out, expected.numpy(), atol=1e-4)
