"""The exceptions of the client: one class per gRPC status code, plus client-side checks.

Every exception is a :class:`TfesiError` carrying the gRPC ``code`` (a ``grpc.StatusCode``),
the server's ``message`` and the ``rpc`` it came from, so callers can branch on the class
(``except NotFoundError``) or on ``err.code``. Errors the client itself detects (a tensor
whose bytes do not match its header, a stream that breaks the contract) are
:class:`IntegrityError` (``DATA_LOSS``) and :class:`ProtocolError` (``INTERNAL``), with
``from_server = False``.
"""

from __future__ import annotations

import grpc


class TfesiError(Exception):
    """Base class: a failed call to a TFESI service."""

    #: Status code this class stands for (the actual code is in ``self.code``).
    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        rpc: str = "",
        from_server: bool = True,
    ) -> None:
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message = message
        self.rpc = rpc
        self.from_server = from_server
        where = f"{rpc}: " if rpc else ""
        super().__init__(f"{where}{self.code.name}: {message}")

    @property
    def retryable(self) -> bool:
        """True for the codes the contracts call safe to retry (with backoff)."""
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class CancelledError(TfesiError):
    default_code = grpc.StatusCode.CANCELLED


class UnknownError(TfesiError):
    default_code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(TfesiError):
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(TfesiError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(TfesiError):
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(TfesiError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(TfesiError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(TfesiError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(TfesiError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(TfesiError):
    default_code = grpc.StatusCode.ABORTED


class OutOfRangeError(TfesiError):
    default_code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(TfesiError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(TfesiError):
    default_code = grpc.StatusCode.INTERNAL


class UnavailableError(TfesiError):
    default_code = grpc.StatusCode.UNAVAILABLE


class DataLossError(TfesiError):
    default_code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(TfesiError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class IntegrityError(DataLossError):
    """Data received does not match what its header promised (size, sha256, offsets, shape)."""

    def __init__(self, message: str, *, rpc: str = "") -> None:
        super().__init__(message, rpc=rpc, from_server=False)


class ProtocolError(InternalError):
    """A stream broke the contract (e.g. no header first, or a second header)."""

    def __init__(self, message: str, *, rpc: str = "") -> None:
        super().__init__(message, rpc=rpc, from_server=False)


_BY_CODE: dict[grpc.StatusCode, type[TfesiError]] = {
    cls.default_code: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}


def error_class(code: grpc.StatusCode) -> type[TfesiError]:
    """The exception class of a status code (``TfesiError`` for codes without one)."""
    return _BY_CODE.get(code, TfesiError)


def from_rpc_error(error: grpc.RpcError, rpc: str = "") -> TfesiError:
    """Turns a ``grpc.RpcError`` (a failed call) into the matching :class:`TfesiError`."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message = details if isinstance(details, str) else str(error)
    return error_class(code)(message, code=code, rpc=rpc)


__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "IntegrityError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ProtocolError",
    "ResourceExhaustedError",
    "TfesiError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "error_class",
    "from_rpc_error",
]
