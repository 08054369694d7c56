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


def per_slice_model(clinical_features: int):  # type: ignore[no-untyped-def]
    import torch

    from tfesi_training.model import OutcomeCnn

    torch.manual_seed(0)
    return OutcomeCnn(slices=11, clinical_features=clinical_features, clinical_hidden=4, head_hidden=8,
                      encoder="per_slice", slice_channels=(4, 8, 8), slice_columns=64).eval()


@pytest.mark.parametrize("clinical_features", [8, 0])
def test_per_slice_encoder_gives_one_probability_per_row(clinical_features: int) -> None:
    import torch

    model = per_slice_model(clinical_features)
    clinical = torch.rand(3, 8) if clinical_features else None
    output = model(torch.randn(3, 11, 256, 256), clinical)
    assert output.shape == (3,)
    assert bool(((output > 0) & (output < 1)).all())
    # Per slice: 8 means + 8 maxima + 8 channels x the last map (128 x 64 pooled pixels after three
    # stride-2 blocks: 16 x 8); eleven slices side by side.
    assert model.image_encoder.width == 11 * (8 + 8 + 8 * 16 * 8)


def test_per_slice_encoder_keeps_the_slice_order_and_shares_its_weights() -> None:
    import torch

    model = per_slice_model(0)
    encoder = model.image_encoder
    torch.manual_seed(3)
    image = torch.randn(1, 11, 256, 256)
    features = encoder(image).reshape(11, -1)
    # Every slice goes through the same weights: slice k alone gives row k of the features.
    for k in (0, 5, 10):
        alone = encoder(image[:, k : k + 1].expand(1, 11, 256, 256)).reshape(11, -1)[0]
        assert torch.allclose(alone, features[k], atol=1e-6)
    # Mirroring the slices (left <-> right) moves the features with them: the side is kept.
    mirrored = encoder(image.flip(1)).reshape(11, -1)
    assert torch.allclose(mirrored, features.flip(0), atol=1e-6)
    assert not torch.allclose(mirrored, features, atol=1e-3)


def test_per_slice_encoder_looks_only_at_the_columns_around_the_canal() -> None:
    import torch

    encoder = per_slice_model(0).image_encoder
    image = torch.randn(1, 11, 256, 256)
    changed = image.clone()
    # 64 pooled columns of 2 mm: tensor columns 64..191 are seen, the rest is cropped away.
    changed[..., :64] = 5.0
    changed[..., 192:] = -5.0
    assert torch.equal(encoder(image), encoder(changed))
    changed[..., 100] = 5.0
    assert not torch.equal(encoder(image), encoder(changed))


def test_unknown_encoder_is_refused_by_name() -> None:
    from tfesi_training.model import OutcomeCnn

    with pytest.raises(ValueError, match="unknown encoder 'unet'"):
        OutcomeCnn(slices=11, clinical_features=0, encoder="unet")
