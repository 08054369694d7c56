"""Model registration: the RegisterModel request stream built from model.onnx and model.json.

The contract (proto/tfesi/inference/v1/inference.proto): a ``RegisterModelHeader`` first (name
and version, the card JSON, the SHA-256 and size of the complete ONNX file), then the file in
``chunk`` messages, in order. The card's ``name`` and ``version`` must equal the header's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from tfesi_client._generated.tfesi.common.v1 import common_pb2
from tfesi_client._generated.tfesi.inference.v1 import inference_pb2

#: Default bytes per chunk (well under the servers' 16 MiB message limit).
DEFAULT_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelFiles:
    """A model version on disk, with what the registration header needs."""

    onnx_path: str
    card_json: str
    name: str
    version: str
    sha256: str
    size_bytes: int


def file_sha256(path: str | os.PathLike[str], block: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 (lowercase hex) and size of a file, read in blocks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while data := handle.read(block):
            hasher.update(data)
            size += len(data)
    return hasher.hexdigest(), size


def load_model_files(onnx_path: str | os.PathLike[str], card_path: str | os.PathLike[str]) -> ModelFiles:
    """Reads the card, takes name and version from it, and hashes the ONNX file.

    Raises ``ValueError`` when the card is not a JSON object with string ``name`` and
    ``version``, or when the ONNX file is empty.
    """
    with open(card_path, encoding="utf-8") as handle:
        card_json = handle.read()
    card = json.loads(card_json)
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: the card is not a JSON object")
    name, version = card.get("name"), card.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise ValueError(f"{card_path}: the card needs string fields 'name' and 'version'")
    sha256, size = file_sha256(onnx_path)
    if size == 0:
        raise ValueError(f"{onnx_path}: the model file is empty")
    return ModelFiles(os.fspath(onnx_path), card_json, name, version, sha256, size)


def register_requests(
    files: ModelFiles,
    *,
    set_as_shadow: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[inference_pb2.RegisterModelRequest]:
    """Yields the RegisterModel stream: the header, then the ONNX file in chunks.

    The file is read lazily; if it changes while being sent (its hash or size no longer what
    the header says), ``ValueError`` is raised before the last chunk goes out, so the server
    never stores it (it would also refuse it with DATA_LOSS).
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    yield inference_pb2.RegisterModelRequest(
        header=inference_pb2.RegisterModelHeader(
            model=common_pb2.ModelRef(name=files.name, version=files.version),
            card_json=files.card_json,
            sha256=files.sha256,
            size_bytes=files.size_bytes,
            set_as_shadow=set_as_shadow,
        )
    )
    hasher = hashlib.sha256()
    sent = 0
    with open(files.onnx_path, "rb") as handle:
        data = handle.read(chunk_bytes)
        while data:
            following = handle.read(chunk_bytes)
            hasher.update(data)
            sent += len(data)
            if not following and (sent != files.size_bytes or hasher.hexdigest() != files.sha256):
                raise ValueError(f"{files.onnx_path} changed while it was being sent")
            yield inference_pb2.RegisterModelRequest(chunk=data)
            data = following
    if sent != files.size_bytes:
        raise ValueError(f"{files.onnx_path} changed while it was being sent")
