"""Assembly of a streamed tensor (Preprocess.Prepare) into a numpy array.

The contract (proto/tfesi/preprocess/v1/preprocess.proto): the first message is a
``TensorHeader`` whose ``tensor`` (a ``TensorInfo``) gives shape ``[S, H, W]``, dtype float32,
``size_bytes`` and the SHA-256 of the data; every later message is a ``TensorChunk`` with its
byte ``offset``; the chunks concatenated in order are the packed little-endian float32 data.
Everything is checked here: header first and only once, contiguous offsets, whole float32
elements, total size equal to ``product(shape) * 4`` and to ``size_bytes``, the SHA-256 when
the header has one, and the spec version when the caller asked for one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tfesi_client._generated.tfesi.common.v1 import common_pb2
from tfesi_client._generated.tfesi.preprocess.v1 import preprocess_pb2
from tfesi_client.errors import IntegrityError, ProtocolError

#: Bytes per element of every v1 tensor (float32).
FLOAT32_BYTES = 4
#: Largest tensor the client assembles (a guard against a corrupt header), 2 GiB.
MAX_TENSOR_BYTES = 2 << 30

_RPC = "tfesi.preprocess.v1.Preprocess/Prepare"


@dataclass(frozen=True)
class PreparedTensor:
    """A tensor received from Preprocess.Prepare with the header that described it."""

    #: float32 array of shape header.tensor.shape ([S, H, W]), native byte order, writable.
    array: npt.NDArray[np.float32]
    #: The stream's header (spec version, geometry, cache hit, ...).
    header: preprocess_pb2.TensorHeader

    @property
    def spec_version(self) -> str:
        return self.header.tensor.spec_version

    @property
    def sha256(self) -> str:
        return self.header.tensor.sha256


def expected_size(info: common_pb2.TensorInfo) -> int:
    """product(shape) * 4, after checking the shape and dtype (IntegrityError otherwise)."""
    shape = list(info.shape)
    if not shape or any(d < 1 for d in shape):
        raise IntegrityError(f"tensor shape {shape} is not a list of dimensions >= 1", rpc=_RPC)
    if info.dtype != common_pb2.D_TYPE_FLOAT32:
        name = common_pb2.DType.Name(info.dtype) if info.dtype in common_pb2.DType.values() else info.dtype
        raise IntegrityError(f"tensor dtype {name} is not D_TYPE_FLOAT32", rpc=_RPC)
    size = math.prod(shape) * FLOAT32_BYTES
    if info.size_bytes != size:
        raise IntegrityError(
            f"header size_bytes {info.size_bytes} != product(shape {shape}) * 4 = {size}", rpc=_RPC
        )
    if size > MAX_TENSOR_BYTES:
        raise IntegrityError(f"tensor of {size} bytes exceeds the client limit {MAX_TENSOR_BYTES}", rpc=_RPC)
    return size


def assemble(
    messages: Iterable[preprocess_pb2.PrepareResponse],
    *,
    expected_spec_version: str | None = None,
) -> PreparedTensor:
    """Assembles a Prepare stream into a :class:`PreparedTensor`, checking everything.

    Raises :class:`ProtocolError` when the stream's shape is wrong (no header first, a second
    header, an empty stream) and :class:`IntegrityError` when the bytes do not match the header.
    """
    header: preprocess_pb2.TensorHeader | None = None
    buffer = bytearray()
    size = 0
    hasher = hashlib.sha256()
    for index, message in enumerate(messages):
        part = message.WhichOneof("part")
        if part == "header":
            if header is not None:
                raise ProtocolError(f"message {index} is a second header", rpc=_RPC)
            header = message.header
            size = expected_size(header.tensor)
            if expected_spec_version and header.tensor.spec_version != expected_spec_version:
                raise IntegrityError(
                    f"asked for spec {expected_spec_version!r}, got {header.tensor.spec_version!r}",
                    rpc=_RPC,
                )
            buffer = bytearray()
        elif part == "chunk":
            if header is None:
                raise ProtocolError(f"message {index} is a chunk before the header", rpc=_RPC)
            chunk = message.chunk
            if chunk.offset != len(buffer):
                raise IntegrityError(
                    f"chunk {index} at offset {chunk.offset}, expected {len(buffer)}", rpc=_RPC
                )
            if len(chunk.data) % FLOAT32_BYTES:
                raise IntegrityError(
                    f"chunk {index} has {len(chunk.data)} bytes, not a multiple of 4", rpc=_RPC
                )
            if len(buffer) + len(chunk.data) > size:
                raise IntegrityError(f"chunk {index} goes past the announced {size} bytes", rpc=_RPC)
            buffer += chunk.data
            hasher.update(chunk.data)
        else:
            raise ProtocolError(f"message {index} has neither header nor chunk", rpc=_RPC)
    if header is None:
        raise ProtocolError("the stream ended without a header", rpc=_RPC)
    if len(buffer) != size:
        raise IntegrityError(f"received {len(buffer)} bytes, the header announced {size}", rpc=_RPC)
    want = header.tensor.sha256
    if want and hasher.hexdigest() != want.lower():
        raise IntegrityError(f"sha256 {hasher.hexdigest()} != header sha256 {want}", rpc=_RPC)
    array = np.frombuffer(buffer, dtype="<f4").reshape(tuple(header.tensor.shape))
    return PreparedTensor(array=array.astype(np.float32, copy=False), header=header)


def split_tensor(
    array: npt.ArrayLike,
    *,
    chunk_bytes: int = 1 << 20,
    spec_version: str = "",
    series_id: str = "",
) -> list[preprocess_pb2.PrepareResponse]:
    """The Prepare stream a server would send for `array` (header, then chunks).

    The inverse of :func:`assemble`, for tests and for fakes of the preprocess service.
    """
    if chunk_bytes < FLOAT32_BYTES or chunk_bytes % FLOAT32_BYTES:
        raise ValueError("chunk_bytes must be a positive multiple of 4")
    data = np.ascontiguousarray(array, dtype="<f4")
    raw = data.tobytes()
    info = common_pb2.TensorInfo(
        shape=list(data.shape),
        dtype=common_pb2.D_TYPE_FLOAT32,
        size_bytes=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        spec_version=spec_version,
    )
    messages = [
        preprocess_pb2.PrepareResponse(header=preprocess_pb2.TensorHeader(tensor=info, series_id=series_id))
    ]
    for offset in range(0, len(raw), chunk_bytes):
        messages.append(
            preprocess_pb2.PrepareResponse(
                chunk=preprocess_pb2.TensorChunk(offset=offset, data=raw[offset : offset + chunk_bytes])
            )
        )
    return messages
