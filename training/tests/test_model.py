"""The network's forward pass: shapes, range, and the clinical branch being optional."""

from __future__ import annotations

import pytest

from conftest import needs_torch

pytestmark = needs_torch


def tiny_model(clinical_features: int):  # type: ignore[no-untyped-def]
    import torch

    from tfesi_training.model import OutcomeCnn

    torch.manual_seed(0)
    return OutcomeCnn(slices=11, clinical_features=clinical_features, stem_channels=4,
                      stage_channels=(8, 8), clinical_hidden=4, head_hidden=8).eval()


@pytest.mark.parametrize("rows", [1, 3])
def test_image_plus_clinical_model_gives_one_probability_per_row(rows: int) -> None:
    import torch

    model = tiny_model(8)
    output = model(torch.randn(rows, 11, 256, 256), torch.rand(rows, 8))
    assert output.shape == (rows,)
    assert output.dtype == torch.float32
    assert bool(((output > 0) & (output < 1)).all())


def test_image_only_model_takes_no_clinical_input() -> None:
    import torch

    model = tiny_model(0)
    assert model.clinical is None
    assert model(torch.randn(2, 11, 256, 256)).shape == (2,)


def test_clinical_model_refuses_a_missing_clinical_input() -> None:
    import torch

    with pytest.raises(ValueError, match="clinical"):
        tiny_model(8)(torch.randn(1, 11, 64, 64))


def test_clinical_features_change_the_output() -> None:
    import torch

    model = tiny_model(8)
    image = torch.randn(1, 11, 64, 64)
    assert not torch.equal(model(image, torch.zeros(1, 8)), model(image, torch.ones(1, 8)))


def test_default_configuration_builds_the_default_network() -> None:
    import torch

    from tfesi_training.config import load_config
    from tfesi_training.model import build_model

    config = load_config()
    model = build_model(config.model, slices=11, clinical_features=8).eval()
    assert model(torch.randn(2, 11, 256, 256), torch.rand(2, 8)).shape == (2,)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000  # far below the 20 MB limit
