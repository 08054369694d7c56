"""The RegisterModel request stream built from model files."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest

from tfesi_client.models import load_model_files, register_requests


def _write_model(tmp_path: pathlib.Path, payload: bytes, card: object) -> tuple[pathlib.Path, pathlib.Path]:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(payload)
    card_path = tmp_path / "model.json"
    card_path.write_text(json.dumps(card))
    return onnx, card_path


def test_header_then_chunks_reassemble_to_the_file(tmp_path: pathlib.Path) -> None:
    payload = bytes(range(256)) * 41 + b"tail"
    onnx, card = _write_model(tmp_path, payload, {"name": "tfesi-test", "version": "3", "threshold": 0.5})
    files = load_model_files(onnx, card)
    assert (files.name, files.version) == ("tfesi-test", "3")
    assert files.size_bytes == len(payload)
    assert files.sha256 == hashlib.sha256(payload).hexdigest()

    requests = list(register_requests(files, set_as_shadow=True, chunk_bytes=1000))
    header = requests[0].header
    assert requests[0].WhichOneof("part") == "header"
    assert (header.model.name, header.model.version) == ("tfesi-test", "3")
    assert header.sha256 == files.sha256
    assert header.size_bytes == len(payload)
    assert header.set_as_shadow is True
    assert json.loads(header.card_json)["threshold"] == 0.5
    chunks = requests[1:]
    assert all(r.WhichOneof("part") == "chunk" for r in chunks)
    assert [len(r.chunk) for r in chunks[:-1]] == [1000] * (len(chunks) - 1)
    assert b"".join(r.chunk for r in chunks) == payload


def test_file_changed_while_sending_is_refused(tmp_path: pathlib.Path) -> None:
    # Larger than the reader's buffer, so the rewrite is seen by the open handle.
    onnx, card = _write_model(tmp_path, b"a" * 200_000, {"name": "m", "version": "1"})
    files = load_model_files(onnx, card)
    stream = register_requests(files, chunk_bytes=1000)
    next(stream)  # header
    next(stream)  # first chunk
    onnx.write_bytes(b"b" * 200_000)
    with pytest.raises(ValueError, match="changed while it was being sent"):
        list(stream)


def test_truncated_file_is_refused(tmp_path: pathlib.Path) -> None:
    onnx, card = _write_model(tmp_path, b"a" * 3000, {"name": "m", "version": "1"})
    files = load_model_files(onnx, card)
    onnx.write_bytes(b"a" * 10)
    with pytest.raises(ValueError, match="changed while it was being sent"):
        list(register_requests(files, chunk_bytes=1000))


@pytest.mark.parametrize(
    "card, message",
    [
        ([1, 2], "not a JSON object"),
        ({"name": "m"}, "'name' and 'version'"),
        ({"name": "m", "version": 3}, "'name' and 'version'"),
    ],
)
def test_bad_cards_are_refused(tmp_path: pathlib.Path, card: object, message: str) -> None:
    onnx, card_path = _write_model(tmp_path, b"x", card)
    with pytest.raises(ValueError, match=message):
        load_model_files(onnx, card_path)


def test_empty_model_file_is_refused(tmp_path: pathlib.Path) -> None:
    onnx, card = _write_model(tmp_path, b"", {"name": "m", "version": "1"})
    with pytest.raises(ValueError, match="empty"):
        load_model_files(onnx, card)
