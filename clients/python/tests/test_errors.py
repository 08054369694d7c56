"""Mapping of gRPC failures to the exception hierarchy."""

from __future__ import annotations

import grpc
import pytest

from tfesi_client import errors


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str | None) -> None:
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


@pytest.mark.parametrize(
    "code, cls",
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, errors.NotFoundError),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExistsError),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPreconditionError),
        (grpc.StatusCode.ABORTED, errors.AbortedError),
        (grpc.StatusCode.UNAUTHENTICATED, errors.UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDeniedError),
        (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceededError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhaustedError),
        (grpc.StatusCode.DATA_LOSS, errors.DataLossError),
        (grpc.StatusCode.UNIMPLEMENTED, errors.UnimplementedError),
        (grpc.StatusCode.INTERNAL, errors.InternalError),
        (grpc.StatusCode.CANCELLED, errors.CancelledError),
        (grpc.StatusCode.UNKNOWN, errors.UnknownError),
        (grpc.StatusCode.OUT_OF_RANGE, errors.OutOfRangeError),
    ],
)
def test_each_code_has_its_class(code: grpc.StatusCode, cls: type[errors.TfesiError]) -> None:
    error = errors.from_rpc_error(_FakeRpcError(code, "rows[2].image.shape"), "Inference/Predict")
    assert type(error) is cls
    assert isinstance(error, errors.TfesiError)
    assert error.code is code
    assert error.message == "rows[2].image.shape"
    assert error.rpc == "Inference/Predict"
    assert error.from_server is True
    assert str(error) == f"Inference/Predict: {code.name}: rows[2].image.shape"


def test_every_status_code_except_ok_maps_to_its_own_class() -> None:
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        assert errors.error_class(code).default_code is code


def test_missing_details_fall_back_to_the_error_text() -> None:
    error = errors.from_rpc_error(_FakeRpcError(grpc.StatusCode.UNAVAILABLE, None))
    assert isinstance(error, errors.UnavailableError)
    assert error.retryable
    assert not errors.from_rpc_error(_FakeRpcError(grpc.StatusCode.NOT_FOUND, "x")).retryable


def test_client_side_errors_keep_their_codes() -> None:
    integrity = errors.IntegrityError("sha256 differs", rpc="Preprocess/Prepare")
    assert integrity.code is grpc.StatusCode.DATA_LOSS and not integrity.from_server
    protocol = errors.ProtocolError("no header")
    assert protocol.code is grpc.StatusCode.INTERNAL and isinstance(protocol, errors.InternalError)
