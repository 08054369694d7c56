"""Assembly of Preprocess.Prepare streams: the happy path and every check."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from tfesi_client import common_pb2, preprocess_pb2
from tfesi_client.errors import DataLossError, IntegrityError, ProtocolError
from tfesi_client.tensors import assemble, split_tensor


def _array(shape: tuple[int, ...] = (3, 5, 7), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("chunk_bytes", [4, 12, 64, 420, 1 << 20])
def test_round_trip_with_any_chunk_size(chunk_bytes: int) -> None:
    array = _array()
    messages = split_tensor(array, chunk_bytes=chunk_bytes, spec_version="tfesi-prep-v1")
    assert messages[0].WhichOneof("part") == "header"
    assert len(messages) - 1 == -(-array.nbytes // chunk_bytes)
    prepared = assemble(messages, expected_spec_version="tfesi-prep-v1")
    assert prepared.array.shape == (3, 5, 7)
    assert prepared.array.dtype == np.float32
    np.testing.assert_array_equal(prepared.array, array)
    assert prepared.sha256 == hashlib.sha256(array.astype("<f4").tobytes()).hexdigest()
    assert prepared.array.flags.writeable


def test_bytes_are_little_endian_row_major() -> None:
    values = [1.0, -2.5, 3.25, 0.0, 1e-3, 7.0]
    raw = struct.pack("<6f", *values)
    info = common_pb2.TensorInfo(
        shape=[1, 2, 3],
        dtype=common_pb2.D_TYPE_FLOAT32,
        size_bytes=24,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    messages = [
        preprocess_pb2.PrepareResponse(header=preprocess_pb2.TensorHeader(tensor=info)),
        preprocess_pb2.PrepareResponse(chunk=preprocess_pb2.TensorChunk(offset=0, data=raw[:8])),
        preprocess_pb2.PrepareResponse(chunk=preprocess_pb2.TensorChunk(offset=8, data=raw[8:])),
    ]
    array = assemble(messages).array
    assert array[0, 1, 2] == np.float32(7.0)
    assert array[0, 0, 1] == np.float32(-2.5)
    np.testing.assert_array_equal(array.ravel(), np.array(values, dtype=np.float32))


def test_sha256_is_optional() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    messages[0].header.tensor.sha256 = ""
    assert assemble(messages).array.shape == (1, 2, 2)


def test_sha256_mismatch_is_integrity_error() -> None:
    messages = split_tensor(_array(), chunk_bytes=40)
    data = bytearray(messages[2].chunk.data)
    data[0] ^= 0x01
    messages[2].chunk.data = bytes(data)
    with pytest.raises(IntegrityError, match="sha256") as caught:
        assemble(messages)
    assert isinstance(caught.value, DataLossError)
    assert caught.value.from_server is False


def test_missing_last_chunk_is_integrity_error() -> None:
    messages = split_tensor(_array(), chunk_bytes=40)
    with pytest.raises(IntegrityError, match="received 400 bytes, the header announced 420"):
        assemble(messages[:-1])


def test_header_only_stream_is_integrity_error() -> None:
    messages = split_tensor(_array((1, 1, 1)))
    with pytest.raises(IntegrityError, match="received 0 bytes"):
        assemble(messages[:1])


def test_offset_gap_is_integrity_error() -> None:
    messages = split_tensor(_array(), chunk_bytes=40)
    del messages[2]
    with pytest.raises(IntegrityError, match="offset 80, expected 40"):
        assemble(messages)


def test_extra_bytes_are_integrity_error() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    messages.append(
        preprocess_pb2.PrepareResponse(chunk=preprocess_pb2.TensorChunk(offset=16, data=b"\0" * 4))
    )
    with pytest.raises(IntegrityError, match="past the announced 16 bytes"):
        assemble(messages)


def test_partial_float_is_integrity_error() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    messages[1].chunk.data = messages[1].chunk.data[:6]
    with pytest.raises(IntegrityError, match="not a multiple of 4"):
        assemble(messages)


def test_size_bytes_must_match_shape() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    messages[0].header.tensor.size_bytes = 15
    with pytest.raises(IntegrityError, match="size_bytes 15 != product"):
        assemble(messages)


def test_dtype_must_be_float32() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    messages[0].header.tensor.dtype = common_pb2.D_TYPE_UNSPECIFIED
    with pytest.raises(IntegrityError, match="D_TYPE_UNSPECIFIED"):
        assemble(messages)


def test_zero_dimension_is_refused() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    messages[0].header.tensor.shape[1] = 0
    with pytest.raises(IntegrityError, match="dimensions >= 1"):
        assemble(messages)


def test_other_spec_version_is_refused() -> None:
    messages = split_tensor(_array((1, 2, 2)), spec_version="tfesi-prep-v2")
    with pytest.raises(IntegrityError, match="asked for spec 'tfesi-prep-v1'"):
        assemble(messages, expected_spec_version="tfesi-prep-v1")


def test_chunk_before_header_is_protocol_error() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    with pytest.raises(ProtocolError, match="chunk before the header"):
        assemble([messages[1], messages[0]])


def test_second_header_is_protocol_error() -> None:
    messages = split_tensor(_array((1, 2, 2)))
    with pytest.raises(ProtocolError, match="second header"):
        assemble([messages[0], messages[0], messages[1]])


def test_empty_stream_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="without a header"):
        assemble([])


def test_empty_message_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="neither header nor chunk"):
        assemble([preprocess_pb2.PrepareResponse()])
