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

`encoder = "per_slice"` replaces the stacked stem with one small encoder whose weights every
slice shares (PerSliceEncoder): each slice, averaged down to 2 mm and cropped to the columns
around the canal, goes through it as a one-channel image, and its features are kept in slice
order (mean, max and a coarse map per slice), so the head still knows which slice, and so which
side, a finding is on. A herniation is a local pattern that appears on one or two of the eleven
slices: with shared weights every slice is a training example of that pattern, where the
stacked stem has to learn it separately for each input channel. Same ONNX inputs and output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tfesi_training.config import ENCODERS


#: Channels of the coarse spatial map (`spatial_grid`).
SPATIAL_CHANNELS = 8



def _block(in_channels: int, out_channels: int, kernel: int, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class StackedEncoder(nn.Module):
    """Slices as the input channels of one CNN: [N, S, H, W] -> [N, width] (mean ++ max ++ map)."""

    def __init__(self, slices: int, stem_channels: int, stage_channels: Sequence[int], spatial_grid: int) -> None:
        super().__init__()
        layers = [_block(slices, stem_channels, 5)]
        width = stem_channels
        for out_channels in stage_channels:
            layers.append(_block(width, out_channels, 3))
            width = out_channels
        self.encoder = nn.Sequential(*layers)
        self.width = 2 * width
        if spatial_grid:
            self.spatial: nn.Module | None = nn.Sequential(
                nn.Conv2d(width, SPATIAL_CHANNELS, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(spatial_grid)
            )
            self.width += SPATIAL_CHANNELS * spatial_grid * spatial_grid
        else:
            self.spatial = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        maps = self.encoder(image)
        features = [maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))]
        if self.spatial is not None:
            features.append(self.spatial(maps).flatten(1))
        return torch.cat(features, dim=1)


class PerSliceEncoder(nn.Module):
    """One encoder shared by every slice: [N, S, H, W] -> [N, S * per-slice width].

    Each slice is average-pooled by `pool` (1 mm pixels to 2 mm with the default 2), cropped to
    `columns` pooled columns centred on the canal (the tensor centres it, docs/preprocessing.md;
    the craniocaudal extent is kept whole), and encoded as a one-channel image by stride-2 blocks.
    Per slice: the channel means, the channel maxima and the whole last map through a 1 x 1
    projection to SPATIAL_CHANNELS (with the defaults 8 x 6 cells of 32 mm, so the head can tell
    the disc levels apart), kept in slice order. The input is the contract's 256 x 256, so the
    map's size is fixed when the model is built.
    """

    def __init__(self, slices: int, channels: Sequence[int], pool: int, columns: int,
                 height: int = 256, width: int = 256) -> None:
        super().__init__()
        if not channels:
            raise ValueError("the per-slice encoder needs at least one block")
        if columns * pool > width:
            raise ValueError(f"{columns} columns of {pool} pixels do not fit a width of {width}")
        self.slices, self.pool, self.columns = slices, pool, columns
        layers = []
        for in_channels, out_channels in zip((1, *channels), channels):
            layers.append(_block(in_channels, out_channels, 3))
        self.encoder = nn.Sequential(*layers)
        map_rows, map_columns = height // pool, columns
        for _ in channels:  # each block: 3 x 3, stride 2, padding 1
            map_rows, map_columns = (map_rows + 1) // 2, (map_columns + 1) // 2
        self.map_cells = map_rows * map_columns
        self.spatial = nn.Sequential(nn.Conv2d(channels[-1], SPATIAL_CHANNELS, 1), nn.ReLU(inplace=True))
        self.slice_width = 2 * channels[-1] + SPATIAL_CHANNELS * self.map_cells
        self.width = slices * self.slice_width

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        rows, slices, height, width = image.shape
        if slices != self.slices:
            raise ValueError(f"expected {self.slices} slices, got {slices}")
        pooled = nn.functional.avg_pool2d(image, self.pool) if self.pool > 1 else image
        pooled_width = width // self.pool
        start = max((pooled_width - self.columns) // 2, 0)
        cropped = pooled[:, :, :, start : start + self.columns]
        maps = self.encoder(cropped.reshape(rows * slices, 1, height // self.pool, cropped.shape[3]))
        per_slice = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3)), self.spatial(maps).flatten(1)], dim=1)
        return per_slice.reshape(rows, slices * self.slice_width)


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
        encoder: str = "stacked",
        slice_channels: Sequence[int] = (16, 24, 32, 48),
        slice_pool: int = 2,
        slice_columns: int = 96,
    ) -> None:
        super().__init__()
        self.slices = slices
        self.clinical_features = clinical_features
        self.auxiliary_outputs = auxiliary_outputs
        if encoder == "stacked":
            self.image_encoder: StackedEncoder | PerSliceEncoder = StackedEncoder(
                slices, stem_channels, stage_channels, spatial_grid)
        elif encoder == "per_slice":
            self.image_encoder = PerSliceEncoder(slices, slice_channels, slice_pool, slice_columns)
        else:
            raise ValueError(f"unknown encoder {encoder!r} (known: {', '.join(ENCODERS)})")
        image_width = self.image_encoder.width
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
        pooled = self.image_encoder(image)
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
        encoder=config_model.encoder,  # type: ignore[attr-defined]
        slice_channels=config_model.slice_channels,  # type: ignore[attr-defined]
        slice_pool=config_model.slice_pool,  # type: ignore[attr-defined]
        slice_columns=config_model.slice_columns,  # type: ignore[attr-defined]
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
