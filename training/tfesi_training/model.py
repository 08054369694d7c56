"""The 2.5D CNN: S sagittal slices as input channels, an optional clinical branch fused before
the head, P(good outcome) out.

    image [N, S, H, W] -> stem: conv 5x5 stride 2 (S -> stem) + BN + ReLU
                       -> stages: conv 3x3 stride 2 + BN + ReLU, one per width
                       -> global average pool ++ global max pool   (2 x last width)
    clinical [N, F]    -> linear (F -> clinical_hidden) + ReLU          (optional)
    concat -> dropout -> linear -> ReLU -> linear -> sigmoid -> p_good_outcome [N]

Two options (off by default): `spatial_grid = G` adds a coarse G x G map of the last stage
(1x1 conv to 8 channels, average pooled) to the pooled features, so the head knows where a
finding is (which disc level), not only that it is there; `auxiliary_outputs = K` adds a linear
head from the image features to K auxiliary targets (auxiliary.py: the generator's per-level
findings), trained beside the outcome, whose predictions also feed the outcome head, both
through its hidden layer and through a linear shortcut with the raw clinical features. Neither
changes the ONNX inputs or output.

Slices stay channels (no 3D convolution): the stem sees every slice at once, so a lateral
herniation on one side's parasagittal slices and the injected side (a clinical feature) can
meet in the head. Max pooling keeps small local findings (a herniation) that averaging over a
256 x 256 field would dilute. Everything exports to ONNX opset 17 with plain operators.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


#: Channels of the coarse spatial map (`spatial_grid`).
SPATIAL_CHANNELS = 8


def _block(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=2, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class OutcomeCnn(nn.Module):
    """The network; `clinical_features = 0` makes it image-only (the paper's design)."""

    def __init__(
        self,
        *,
        slices: int,
        clinical_features: int,
        stem_channels: int = 24,
        stage_channels: Sequence[int] = (32, 48, 64),
        clinical_hidden: int = 16,
        head_hidden: int = 32,
        dropout: float = 0.2,
        spatial_grid: int = 0,
        auxiliary_outputs: int = 0,
    ) -> None:
        super().__init__()
        self.slices = slices
        self.clinical_features = clinical_features
        self.auxiliary_outputs = auxiliary_outputs
        layers = [_block(slices, stem_channels, 5)]
        width = stem_channels
        for out_channels in stage_channels:
            layers.append(_block(width, out_channels, 3))
            width = out_channels
        self.encoder = nn.Sequential(*layers)
        image_width = 2 * width
        if spatial_grid:
            self.spatial: nn.Module | None = nn.Sequential(
                nn.Conv2d(width, SPATIAL_CHANNELS, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(spatial_grid)
            )
            image_width += SPATIAL_CHANNELS * spatial_grid * spatial_grid
        else:
            self.spatial = None
        self.auxiliary = nn.Linear(image_width, auxiliary_outputs) if auxiliary_outputs else None
        fused = image_width + auxiliary_outputs
        if clinical_features:
            self.clinical = nn.Sequential(nn.Linear(clinical_features, clinical_hidden), nn.ReLU(inplace=True))
            fused += clinical_hidden
        else:
            self.clinical = None
        # With auxiliary outputs, a linear path from the predicted findings and the raw clinical
        # features to the logit beside the hidden layer: the outcome is close to linear in them
        # (docs/synth.md, "The outcome model"), which a small hidden layer learns slowly.
        self.shortcut = (
            nn.Linear(auxiliary_outputs + clinical_features, 1, bias=False) if auxiliary_outputs else None
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fused, head_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(head_hidden, 1),
        )

    def outputs(
        self, image: torch.Tensor, clinical: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logit of P(good outcome) [N], and the auxiliary predictions [N, K] (None without)."""
        maps = self.encoder(image)
        features = [maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))]
        if self.spatial is not None:
            features.append(self.spatial(maps).flatten(1))
        pooled = torch.cat(features, dim=1)
        auxiliary = self.auxiliary(pooled) if self.auxiliary is not None else None
        fused = [pooled] if auxiliary is None else [pooled, auxiliary]
        if self.clinical is not None:
            if clinical is None:
                raise ValueError("this model takes a clinical input")
            fused.append(self.clinical(clinical))
        logits = self.head(torch.cat(fused, dim=1))
        if self.shortcut is not None and auxiliary is not None:
            logits = logits + self.shortcut(auxiliary if clinical is None else torch.cat([auxiliary, clinical], dim=1))
        return logits.reshape(-1), auxiliary

    def logits(self, image: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """Logit of P(good outcome), shape [N]."""
        return self.outputs(image, clinical)[0]

    def forward(self, image: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """P(good outcome), shape [N] (the ONNX output `p_good_outcome`)."""
        return torch.sigmoid(self.logits(image, clinical))


def build_model(config_model: object, *, slices: int, clinical_features: int,
                auxiliary_outputs: int = 0) -> OutcomeCnn:
    """The network for a [model] config section (`auxiliary_outputs` from the data: 0 without a key)."""
    return OutcomeCnn(
        slices=slices,
        clinical_features=clinical_features,
        stem_channels=config_model.stem_channels,  # type: ignore[attr-defined]
        stage_channels=config_model.stage_channels,  # type: ignore[attr-defined]
        clinical_hidden=config_model.clinical_hidden,  # type: ignore[attr-defined]
        head_hidden=config_model.head_hidden,  # type: ignore[attr-defined]
        dropout=config_model.dropout,  # type: ignore[attr-defined]
        spatial_grid=config_model.spatial_grid,  # type: ignore[attr-defined]
        auxiliary_outputs=auxiliary_outputs,
    )


def set_determinism(seed: int, threads: int) -> None:
    """Seeds every generator and makes torch choose deterministic kernels on `threads` threads."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (only allowed before any parallel work)
        pass
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
