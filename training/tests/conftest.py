"""Shared fixtures of the training tests. None needs a running stack.

Tests that need PyTorch use the `torch` fixture (or `needs_torch`), which skips them with a
plain message when PyTorch is not installed (install: scripts/setup-training.sh).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

TRAINING_DIR = pathlib.Path(__file__).resolve().parent.parent
REPO_ROOT = TRAINING_DIR.parent
if str(TRAINING_DIR) not in sys.path:
    sys.path.insert(0, str(TRAINING_DIR))

TORCH_MISSING = importlib.util.find_spec("torch") is None
NO_TORCH_REASON = "PyTorch is not installed (install it with scripts/setup-training.sh, run with .venv-training/bin/python)"
needs_torch = pytest.mark.skipif(TORCH_MISSING, reason=NO_TORCH_REASON)


@pytest.fixture(scope="session")
def fake_snapshot(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 40-patient fake snapshot with 11x32x32 tensors: (parquet, tensor dir, snapshot id)."""
    from tfesi_training.fake import write_fake_snapshot

    return write_fake_snapshot(tmp_path_factory.mktemp("fake"), patients=40, shape=(11, 32, 32), seed=3)


@pytest.fixture(scope="session")
def tiny_config():  # type: ignore[no-untyped-def]
    from tfesi_training.config import load_config

    return load_config(TRAINING_DIR / "configs" / "tiny.toml")
