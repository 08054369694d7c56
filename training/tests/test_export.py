"""ONNX export: dynamic batch, the contract's names and shapes, parity with PyTorch within 1e-5,
and a card whose self-test ONNX Runtime passes the way tfesi-inference runs it."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_torch

pytestmark = needs_torch

SLICES, HEIGHT, WIDTH = 11, 256, 256  # tfesi-prep-v1


def exported(tmp_path, clinical_features: int, encoder: str = "stacked"):  # type: ignore[no-untyped-def]
    import torch

    from tfesi_training.export import export_onnx
    from tfesi_training.model import OutcomeCnn

    torch.manual_seed(1)
    model = OutcomeCnn(slices=SLICES, clinical_features=clinical_features, stem_channels=4,
                       stage_channels=(8, 8), clinical_hidden=4, head_hidden=8, encoder=encoder,
                       slice_channels=(4, 8, 8), slice_columns=64).eval()
    # Non-trivial batch-norm statistics, as after training.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "model.onnx"
    sha256 = export_onnx(model, path, height=HEIGHT, width=WIDTH)
    return model, path, sha256


@pytest.mark.parametrize("clinical_features", [8, 0])
def test_onnx_graph_has_the_contract_names_and_a_dynamic_batch(tmp_path, clinical_features: int) -> None:  # type: ignore[no-untyped-def]
    import onnx

    _, path, _ = exported(tmp_path, clinical_features)
    graph = onnx.load(str(path)).graph
    inputs = {item.name: item.type.tensor_type.shape.dim for item in graph.input}
    assert list(inputs) == (["image", "clinical"] if clinical_features else ["image"])
    image_dims = inputs["image"]
    assert image_dims[0].dim_param and not image_dims[0].dim_value, "batch dimension must be symbolic"
    assert [d.dim_value for d in image_dims[1:]] == [SLICES, HEIGHT, WIDTH]
    if clinical_features:
        assert inputs["clinical"][0].dim_param and inputs["clinical"][1].dim_value == clinical_features
    (output,) = graph.output
    assert output.name == "p_good_outcome"
    assert len(output.type.tensor_type.shape.dim) == 1


@pytest.mark.parametrize("encoder", ["stacked", "per_slice"])
def test_onnx_runtime_matches_pytorch_within_1e_5_for_batches_of_1_3_and_5(tmp_path, encoder: str) -> None:  # type: ignore[no-untyped-def]
    from tfesi_training.export import onnx_predict, parity_check, torch_predict

    model, path, _ = exported(tmp_path, 8, encoder)
    rng = np.random.default_rng(0)
    by_torch, by_onnx = torch_predict(model), onnx_predict(path)
    for rows in (1, 3, 5):
        image = rng.normal(0, 1, (rows, SLICES, HEIGHT, WIDTH)).astype(np.float32)
        clinical = rng.random((rows, 8)).astype(np.float32)
        got, expected = by_onnx(image, clinical), by_torch(image, clinical)
        assert got.shape == (rows,)
        assert np.max(np.abs(got - expected)) <= 1e-5
    report = parity_check(model, path, height=HEIGHT, width=WIDTH,
                          real_images=list(rng.normal(0, 1, (2, SLICES, HEIGHT, WIDTH)).astype(np.float32)),
                          real_clinical=rng.random((2, 8)).astype(np.float32))
    assert report["max_abs_difference"] <= 1e-5
    assert report["values_compared"] == 1 + 3 + 1 + 2 + 1


def test_card_self_test_vectors_pass_under_onnx_runtime_as_the_service_runs_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tfesi_training.card import build_card, materialize, self_test_vectors, validate_card
    from tfesi_training.export import onnx_predict, torch_predict
    from tfesi_training.features import FEATURE_NAMES, card_features

    model, path, sha256 = exported(tmp_path, 8)
    vectors = self_test_vectors(torch_predict(model), SLICES, HEIGHT, WIDTH, 8)
    card = build_card(
        name="tfesi-cnn-test", version="1", model_sha256=sha256, spec_version="tfesi-prep-v1",
        slices=SLICES, height=HEIGHT, width=WIDTH, clinical_features=card_features(FEATURE_NAMES),
        threshold=0.5, training_snapshot_id=None, validation_metrics={}, intended_use="tests",
        limitations="tests", self_test_vectors_=vectors, self_test_tolerance=1e-5, description_details="",
    )
    validate_card(card, model_sha256=sha256)
    run = onnx_predict(path)
    for vector in card["self_test"]["vectors"]:
        inputs = {name: materialize(tensor) for name, tensor in vector["inputs"].items()}
        got = run(inputs["image"], inputs.get("clinical"))
        assert np.max(np.abs(got - np.asarray(vector["expected"], dtype=np.float32))) <= card["self_test"]["tolerance"]
