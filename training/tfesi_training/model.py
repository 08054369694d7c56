"""The 2.5D CNN: S sagittal slices as input channels, an optional clinical branch fused before
the head, P(good outcome) out.

    image [N, S, H, W] -> stem: conv 5x5 stride 2 (S -> stem) + BN + ReLU
                       -> stages: conv 3x3 stride 2 + BN + ReLU, one per width
                       -> global average pool ++ global max pool   (2 x last width)
    clinical [N, F]    -> linear (F -> clinical_hidden) + ReLU          (optional)
    concat -> dropout -> linear -> ReLU -> linear -> sigmoid -> p_good_outcome [N]

Slices stay channels (no 3D convolution): the stem sees every slice at once, so a lateral
herniation on one side's parasagittal slices and the injected side (a clinical feature) can
meet in the head. Max pooling keeps small local findings (a herniation) that averaging over a
256 x 256 field would dilute. Everything exports to ONNX opset 17 with plain operators.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


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
    ) -> None:
        super().__init__()
        self.slices = slices
        self.clinical_features = clinical_features
        layers = [_block(slices, stem_channels, 5)]
        width = stem_channels
        for out_channels in stage_channels:
            layers.append(_block(width, out_channels, 3))
            width = out_channels
        self.encoder = nn.Sequential(*layers)
        image_width = 2 * width
        if clinical_features:
            self.clinical = nn.Sequential(nn.Linear(clinical_features, clinical_hidden), nn.ReLU(inplace=True))
            fused = image_width + clinical_hidden
        else:
            self.clinical = None
            fused = image_width
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fused, head_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(head_hidden, 1),
        )

    def logits(self, image: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """Logit of P(good outcome), shape [N]."""
        maps = self.encoder(image)
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
        if self.clinical is not None:
            if clinical is None:
                raise ValueError("this model takes a clinical input")
            pooled = torch.cat([pooled, self.clinical(clinical)], dim=1)
        return self.head(pooled).reshape(-1)

    def forward(self, image: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """P(good outcome), shape [N] (the ONNX output `p_good_outcome`)."""
        return torch.sigmoid(self.logits(image, clinical))


def build_model(config_model: object, *, slices: int, clinical_features: int) -> OutcomeCnn:
    """The network for a [model] config section."""
    return OutcomeCnn(
        slices=slices,
        clinical_features=clinical_features,
        stem_channels=config_model.stem_channels,  # type: ignore[attr-defined]
        stage_channels=config_model.stage_channels,  # type: ignore[attr-defined]
        clinical_hidden=config_model.clinical_hidden,  # type: ignore[attr-defined]
        head_hidden=config_model.head_hidden,  # type: ignore[attr-defined]
        dropout=config_model.dropout,  # type: ignore[attr-defined]
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
