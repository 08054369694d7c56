"""The training loop: minibatches in a seeded order, early stopping on validation AUC, the best
epoch's weights kept. Deterministic for a seed and thread count (model.set_determinism)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tfesi_training.data import SplitData
from tfesi_training.features import FEATURE_NAMES
from tfesi_training.metrics import roc_auc
from tfesi_training.model import OutcomeCnn


@dataclass
class Arrays:
    """A split as arrays for the loop: tensors stay as (possibly memory-mapped) per-row arrays."""

    tensors: Sequence[npt.NDArray[np.float32]]
    clinical: npt.NDArray[np.float32] | None
    labels: npt.NDArray[np.float32]
    auxiliary: npt.NDArray[np.float32] | None = None

    @classmethod
    def from_split(cls, split: SplitData, use_clinical: bool) -> Arrays:
        clinical = split.clinical(FEATURE_NAMES) if use_clinical else None
        return cls(tensors=split.tensors, clinical=clinical, labels=split.label_array(), auxiliary=split.auxiliary)

    def __len__(self) -> int:
        return len(self.tensors)

    def batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        image = torch.from_numpy(np.stack([np.asarray(self.tensors[i], dtype=np.float32) for i in index]))
        clinical = None if self.clinical is None else torch.from_numpy(self.clinical[list(index)])
        return image, clinical, torch.from_numpy(self.labels[list(index)])


def shift_batch(image: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Random in-plane shift per row (zero fill), up to `max_shift` pixels each way."""
    if max_shift <= 0:
        return image
    rows, _, height, width = image.shape
    padded = nn.functional.pad(image, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (rows, 2), generator=generator)
    return torch.stack(
        [padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets.tolist())]
    )


@torch.no_grad()
def predict(model: OutcomeCnn, arrays: Arrays, batch_size: int = 16) -> npt.NDArray[np.float64]:
    """P(good outcome) for every row, in eval mode."""
    model.eval()
    outputs = []
    for start in range(0, len(arrays), batch_size):
        image, clinical, _ = arrays.batch(range(start, min(start + batch_size, len(arrays))))
        outputs.append(model(image, clinical).double().numpy())
    return np.concatenate(outputs) if outputs else np.zeros(0)


@torch.no_grad()
def auxiliary_error(model: OutcomeCnn, arrays: Arrays, batch_size: int = 16) -> float | None:
    """Mean squared error of the auxiliary predictions over every target (None without them)."""
    if arrays.auxiliary is None or model.auxiliary_outputs == 0 or len(arrays) == 0:
        return None
    model.eval()
    total = 0.0
    for start in range(0, len(arrays), batch_size):
        index = range(start, min(start + batch_size, len(arrays)))
        image, clinical, _ = arrays.batch(index)
        _, predicted = model.outputs(image, clinical)
        assert predicted is not None
        total += float(((predicted - torch.from_numpy(arrays.auxiliary[list(index)])) ** 2).sum())
    return total / arrays.auxiliary.size


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    criterion: str
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def _bce(probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.float32]) -> float:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))


def train(model: OutcomeCnn, train_arrays: Arrays, validation_arrays: Arrays, train_config: Any,
          log: Any = print) -> TrainResult:
    """Trains in place and leaves the best epoch's weights in `model`.

    The criterion is the validation AUC; when the validation split lacks one of the classes (a
    tiny cohort) it is the negative validation log loss instead, and the result says so.
    """
    generator = torch.Generator().manual_seed(train_config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.learning_rate,
                                  weight_decay=train_config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train_config.epochs)
    loss_fn = nn.BCEWithLogitsLoss()
    use_auc = len(validation_arrays) > 0 and 0 < validation_arrays.labels.sum() < len(validation_arrays)
    criterion = "validation_auc" if use_auc else "negative_validation_log_loss"
    best = TrainResult(best_epoch=0, best_score=-math.inf, criterion=criterion)
    best_state = copy.deepcopy(model.state_dict())
    started = time.perf_counter()
    stale = 0
    for epoch in range(1, train_config.epochs + 1):
        model.train()
        order = torch.randperm(len(train_arrays), generator=generator).tolist()
        total, seen = 0.0, 0
        for start in range(0, len(order), train_config.batch_size):
            index = order[start : start + train_config.batch_size]
            if len(index) < 2 and len(order) > 1:
                continue  # batch norm needs two rows; a lone last row is dropped this epoch
            image, clinical, labels = train_arrays.batch(index)
            image = shift_batch(image, train_config.max_shift_px, generator)
            optimizer.zero_grad(set_to_none=True)
            logits, auxiliary = model.outputs(image, clinical)
            loss = loss_fn(logits, labels)
            if auxiliary is not None and train_arrays.auxiliary is not None:
                targets = torch.from_numpy(train_arrays.auxiliary[index])
                loss = loss + train_config.auxiliary_weight * nn.functional.mse_loss(auxiliary, targets)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
            seen += len(index)
        schedule.step()
        probabilities = predict(model, validation_arrays, train_config.batch_size)
        validation_auc = roc_auc(probabilities, validation_arrays.labels) if len(probabilities) else None
        validation_loss = _bce(probabilities, validation_arrays.labels) if len(probabilities) else math.nan
        score = validation_auc if use_auc and validation_auc is not None else -validation_loss
        validation_auxiliary = auxiliary_error(model, validation_arrays, train_config.batch_size)
        record = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "validation_auc": validation_auc,
            "validation_log_loss": validation_loss,
            "validation_auxiliary_mse": validation_auxiliary,
            "seconds": round(time.perf_counter() - started, 2),
        }
        best.history.append(record)
        improved = score > best.best_score + train_config.min_delta
        auxiliary_text = "" if validation_auxiliary is None else f"  val aux MSE {validation_auxiliary:.4f}"
        log(
            f"epoch {epoch:3d}  train loss {record['train_loss']:.4f}  val AUC "
            f"{'-' if validation_auc is None else f'{validation_auc:.4f}'}  val log loss {validation_loss:.4f}"
            f"{auxiliary_text}{'  *' if improved else ''}  ({record['seconds']:.1f} s)"
        )
        if improved or epoch == 1:
            best.best_epoch, best.best_score = epoch, score
            best_state = copy.deepcopy(model.state_dict())
            stale = 0
        else:
            stale += 1
            if stale >= train_config.patience:
                best.stopped_early = True
                log(f"early stop: no improvement of {criterion} for {stale} epochs")
                break
    model.load_state_dict(best_state)
    model.eval()
    best.seconds = time.perf_counter() - started
    return best
