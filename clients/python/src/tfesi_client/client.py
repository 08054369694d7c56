"""TfesiClient: channels to the four services and the helpers a retraining job needs."""

from __future__ import annotations

import datetime
import os
import re
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self, TypeVar, cast

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf import timestamp_pb2

from tfesi_client._generated.tfesi.common.v1 import common_pb2
from tfesi_client._generated.tfesi.inference.v1 import inference_pb2, inference_pb2_grpc
from tfesi_client._generated.tfesi.ingest.v1 import ingest_pb2_grpc
from tfesi_client._generated.tfesi.preprocess.v1 import preprocess_pb2, preprocess_pb2_grpc
from tfesi_client._generated.tfesi.registry.v1 import (
    dataset_pb2,
    registry_pb2,
    registry_pb2_grpc,
)
from tfesi_client.enums import enum_value
from tfesi_client.errors import IntegrityError, ProtocolError, TfesiError, from_rpc_error
from tfesi_client.models import DEFAULT_CHUNK_BYTES, load_model_files, register_requests
from tfesi_client.snapshots import SnapshotExport, label_to_int, row_to_dict
from tfesi_client.tensors import PreparedTensor, assemble

#: Default addresses of the services (README.md, "What exists today").
DEFAULT_INGEST = "127.0.0.1:50051"
DEFAULT_PREPROCESS = "127.0.0.1:50052"
DEFAULT_INFERENCE = "127.0.0.1:50053"
DEFAULT_REGISTRY = "127.0.0.1:50054"

#: Largest message the client accepts (servers send at most 16 MiB by default).
MAX_RECEIVE_BYTES = 64 << 20

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

#: A model named as a ModelRef, a (name, version) pair, or "name/version".
ModelLike = common_pb2.ModelRef | tuple[str, str] | str
#: A value given directly, or a function called before every RPC (e.g. a token refresher).
StrSource = str | Callable[[], str | None] | None

_T = TypeVar("_T")


def model_ref(model: ModelLike, version: str | None = None) -> common_pb2.ModelRef:
    """A ``ModelRef`` from a ModelRef, a (name, version) pair, "name/version", or name + version."""
    if isinstance(model, common_pb2.ModelRef):
        return model
    if isinstance(model, tuple):
        name, ver = model
        return common_pb2.ModelRef(name=name, version=ver)
    if version is not None:
        return common_pb2.ModelRef(name=model, version=version)
    name, sep, ver = model.partition("/")
    if not sep or not name or not ver:
        raise ValueError(f"model {model!r} is not 'name/version'")
    return common_pb2.ModelRef(name=name, version=ver)


def to_timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp from a datetime; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def to_date(value: datetime.date) -> common_pb2.Date:
    """A ``tfesi.common.v1.Date`` from a ``datetime.date``."""
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def _resolve(source: StrSource) -> str | None:
    value = source() if callable(source) else source
    return value or None


def check_traceparent(value: str) -> str:
    """Returns a W3C traceparent header value unchanged; ValueError when it is malformed."""
    if (
        not _TRACEPARENT.match(value)
        or value.startswith("ff")
        or value[3:35] == "0" * 32
        or value[36:52] == "0" * 16
    ):
        raise ValueError(f"{value!r} is not a W3C traceparent (version-traceid-parentid-flags)")
    return value


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the metadata of `provider()` (token, traceparent, ...) to every call."""

    def __init__(self, provider: Callable[[], list[tuple[str, str]]]) -> None:
        self._provider = provider

    def _details(self, details: Any) -> _CallDetails:
        metadata = list(details.metadata or [])
        present = {key for key, _ in metadata}
        metadata.extend((k, v) for k, v in self._provider() if k not in present)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass(frozen=True)
class ModelListing:
    """Every registered model version (newest registration first) and the serving slots."""

    models: list[inference_pb2.ModelInfo]
    champion: common_pb2.ModelRef | None
    shadow: common_pb2.ModelRef | None

    def find(self, name: str, version: str) -> inference_pb2.ModelInfo | None:
        """The listed version `name`/`version`, or None."""
        for info in self.models:
            if info.card.model.name == name and info.card.model.version == version:
                return info
        return None


@dataclass(frozen=True)
class TrainingExample:
    """One snapshot row joined with its tensor (what a training loop consumes)."""

    #: The row as a flat dict (tfesi_client.snapshots.row_to_dict).
    row: dict[str, Any]
    #: 1 GOOD, 0 POOR, None unlabeled (only with skip_unlabeled=False).
    label: int | None
    #: float32 [S, H, W] from Preprocess.Prepare.
    tensor: npt.NDArray[np.float32]
    #: Spec version that produced the tensor.
    spec_version: str
    #: SHA-256 of the tensor bytes (from the verified header).
    tensor_sha256: str
    #: The exported row message itself.
    message: dataset_pb2.SnapshotRow


class TfesiClient:
    """Channels to ingest, preprocess, inference and registry, with metadata on every call.

    ``token`` (a string, or a function returning the current one) is sent as
    ``authorization: Bearer <token>``; ``traceparent`` (W3C) is sent as ``traceparent`` so the
    services' spans join the caller's trace. Both may be changed later through the attributes
    of the same names. ``metadata`` adds fixed pairs to every call. ``credentials`` makes the
    channels TLS channels. The raw generated stubs are available as ``ingest``,
    ``preprocess``, ``inference`` and ``registry`` (they get the same metadata).

    Failed calls raise :class:`tfesi_client.errors.TfesiError` subclasses. Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        ingest: str = DEFAULT_INGEST,
        preprocess: str = DEFAULT_PREPROCESS,
        inference: str = DEFAULT_INFERENCE,
        registry: str = DEFAULT_REGISTRY,
        token: StrSource = None,
        traceparent: StrSource = None,
        metadata: Sequence[tuple[str, str]] = (),
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 30.0,
        stream_timeout: float | None = 3600.0,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if isinstance(traceparent, str):
            check_traceparent(traceparent)
        self.token: StrSource = token
        self.traceparent: StrSource = traceparent
        self.extra_metadata: list[tuple[str, str]] = list(metadata)
        #: Deadline of unary calls, seconds.
        self.timeout = timeout
        #: Deadline of streaming calls (exports, tensors, registrations), seconds; None: none.
        self.stream_timeout = stream_timeout
        self.addresses = {
            "ingest": ingest,
            "preprocess": preprocess,
            "inference": inference,
            "registry": registry,
        }
        channel_options = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_RECEIVE_BYTES),
            *options,
        ]
        interceptor = MetadataInterceptor(self.call_metadata)
        self._channels: dict[str, grpc.Channel] = {}
        for service, address in self.addresses.items():
            raw = (
                grpc.secure_channel(address, credentials, options=channel_options)
                if credentials is not None
                else grpc.insecure_channel(address, options=channel_options)
            )
            self._channels[service] = grpc.intercept_channel(raw, interceptor)
            self._channels[f"_raw_{service}"] = raw
        self.ingest = ingest_pb2_grpc.IngestStub(self._channels["ingest"])  # type: ignore[no-untyped-call]
        self.preprocess = preprocess_pb2_grpc.PreprocessStub(self._channels["preprocess"])  # type: ignore[no-untyped-call]
        self.inference = inference_pb2_grpc.InferenceStub(self._channels["inference"])  # type: ignore[no-untyped-call]
        self.registry = registry_pb2_grpc.RegistryStub(self._channels["registry"])  # type: ignore[no-untyped-call]

    @classmethod
    def from_env(cls, prefix: str = "TFESI_CLIENT_", **overrides: Any) -> TfesiClient:
        """A client configured from ``<prefix>INGEST``, ``PREPROCESS``, ``INFERENCE``,
        ``REGISTRY`` (addresses), ``TOKEN`` and ``TRACEPARENT``; keyword arguments win."""
        kwargs: dict[str, Any] = {}
        for key in ("ingest", "preprocess", "inference", "registry", "token", "traceparent"):
            value = os.environ.get(prefix + key.upper())
            if value:
                kwargs[key] = value
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- plumbing -------------------------------------------------------------------------

    def call_metadata(self) -> list[tuple[str, str]]:
        """The metadata every call carries now (authorization, traceparent, extra pairs)."""
        metadata = list(self.extra_metadata)
        token = _resolve(self.token)
        if token:
            metadata.append(("authorization", f"Bearer {token}"))
        traceparent = _resolve(self.traceparent)
        if traceparent:
            metadata.append(("traceparent", check_traceparent(traceparent)))
        return metadata

    def close(self) -> None:
        """Closes the four channels."""
        for key, channel in self._channels.items():
            if key.startswith("_raw_"):
                channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, rpc: str, method: Callable[..., Any], request: Any, response: type[_T]) -> _T:
        try:
            result = method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error, rpc) from error
        if not isinstance(result, response):
            raise ProtocolError(
                f"answer of type {type(result).__name__}, expected {response.__name__}", rpc=rpc
            )
        return result

    def _server_stream(
        self, rpc: str, method: Callable[..., Any], request: Any
    ) -> Generator[Any, None, None]:
        call = method(request, timeout=self.stream_timeout)
        try:
            yield from call
        except grpc.RpcError as error:
            raise from_rpc_error(error, rpc) from error
        finally:
            call.cancel()  # no-op when the stream finished; frees the call when abandoned

    def _client_stream(
        self, rpc: str, method: Callable[..., Any], requests: Iterable[Any], response: type[_T]
    ) -> _T:
        # grpc swallows an exception raised by the request iterator (the call just fails);
        # keep it and raise it instead of the resulting status.
        failure: list[BaseException] = []
        lock = threading.Lock()

        def guarded() -> Iterator[Any]:
            try:
                yield from requests
            except BaseException as error:
                with lock:
                    failure.append(error)
                raise

        try:
            result = method(guarded(), timeout=self.stream_timeout)
        except grpc.RpcError as error:
            with lock:
                if failure:
                    raise failure[0] from error
            raise from_rpc_error(error, rpc) from error
        if not isinstance(result, response):
            raise ProtocolError(
                f"answer of type {type(result).__name__}, expected {response.__name__}", rpc=rpc
            )
        return result

    # -- inference: models ----------------------------------------------------------------

    def list_models(self, name: str = "", *, page_size: int = 0) -> ModelListing:
        """Every registered version (all pages), newest registration first, with the slots."""
        models: list[inference_pb2.ModelInfo] = []
        token = ""
        while True:
            response = self._unary(
                "Inference/ListModels",
                self.inference.ListModels,
                inference_pb2.ListModelsRequest(
                    name=name, page=common_pb2.PageRequest(page_size=page_size, page_token=token)
                ),
                inference_pb2.ListModelsResponse,
            )
            models.extend(response.models)
            token = response.page.next_page_token
            if not token:
                champion = response.champion if response.HasField("champion") else None
                shadow = response.shadow if response.HasField("shadow") else None
                return ModelListing(models, champion, shadow)

    def get_model(self, model: ModelLike, version: str | None = None) -> inference_pb2.ModelInfo:
        """One version with its card and serving state (NotFoundError when unknown)."""
        request = inference_pb2.GetModelRequest(model=model_ref(model, version))
        return self._unary(
            "Inference/GetModel", self.inference.GetModel, request, inference_pb2.GetModelResponse
        ).model

    def register_model(
        self,
        onnx_path: str | os.PathLike[str],
        card_path: str | os.PathLike[str],
        *,
        set_as_shadow: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> inference_pb2.RegisterModelResponse:
        """Registers model.onnx with its card (name and version come from the card).

        Streams a header with the file's SHA-256 and size, then the file in chunks; the
        server self-tests the model before storing it (FailedPreconditionError when the
        self-test fails). Idempotent: registering the same files again returns
        ``created = False``.
        """
        files = load_model_files(onnx_path, card_path)
        requests = register_requests(files, set_as_shadow=set_as_shadow, chunk_bytes=chunk_bytes)
        return self._client_stream(
            "Inference/RegisterModel",
            self.inference.RegisterModel,
            requests,
            inference_pb2.RegisterModelResponse,
        )

    def set_shadow(
        self, model: ModelLike, version: str | None = None, *, reason: str
    ) -> inference_pb2.SetShadowResponse:
        """Makes the model the shadow (runs beside the champion, never the answer)."""
        request = inference_pb2.SetShadowRequest(model=model_ref(model, version), reason=reason)
        return self._unary(
            "Inference/SetShadow", self.inference.SetShadow, request, inference_pb2.SetShadowResponse
        )

    def clear_shadow(self, *, reason: str) -> inference_pb2.SetShadowResponse:
        """Empties the shadow slot."""
        request = inference_pb2.SetShadowRequest(clear=True, reason=reason)
        return self._unary(
            "Inference/SetShadow", self.inference.SetShadow, request, inference_pb2.SetShadowResponse
        )

    def promote(
        self,
        model: ModelLike,
        version: str | None = None,
        *,
        reason: str,
        expected_champion: ModelLike | None = None,
    ) -> inference_pb2.PromoteResponse:
        """Makes the model the champion. With `expected_champion`, only if that is the current
        champion (AbortedError otherwise)."""
        request = inference_pb2.PromoteRequest(model=model_ref(model, version), reason=reason)
        if expected_champion is not None:
            request.expected_champion.CopyFrom(model_ref(expected_champion))
        return self._unary(
            "Inference/Promote", self.inference.Promote, request, inference_pb2.PromoteResponse
        )

    def rollback(
        self, *, reason: str, expected_champion: ModelLike | None = None
    ) -> inference_pb2.RollbackResponse:
        """Makes the previous champion the champion again. Pass `expected_champion` so a
        retried rollback cannot roll back twice (AbortedError)."""
        request = inference_pb2.RollbackRequest(reason=reason)
        if expected_champion is not None:
            request.expected_champion.CopyFrom(model_ref(expected_champion))
        return self._unary(
            "Inference/Rollback", self.inference.Rollback, request, inference_pb2.RollbackResponse
        )

    # -- registry: snapshots and performance ---------------------------------------------

    def create_snapshot(
        self,
        *,
        as_of: datetime.datetime | None = None,
        indications: Sequence[int | str] = (),
        levels: Sequence[int | str] = (),
        injected_from: datetime.date | None = None,
        injected_to: datetime.date | None = None,
        require_study: bool = False,
        include_unlabeled: bool = False,
        label_rule_version: str = "",
        split_seed: int = 0,
        fractions: tuple[float, float, float] | None = None,
        description: str = "",
    ) -> registry_pb2.CreateSnapshotResponse:
        """Freezes a snapshot manifest (Registry.CreateSnapshot); naturally idempotent.

        `as_of` defaults to now, truncated to the whole second (so it is never in the
        server's future). Enum filters take ints or names ("herniated_disc", "l4_l5").
        `fractions` is (train, validation, test); None means the server's 0.7/0.15/0.15.
        """
        if as_of is None:
            as_of = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        snapshot_filter = dataset_pb2.SnapshotFilter(
            indications=cast(Any, [enum_value(common_pb2.Indication, v) for v in indications]),
            levels=cast(Any, [enum_value(common_pb2.SpinalLevel, v) for v in levels]),
            require_study=require_study,
            include_unlabeled=include_unlabeled,
        )
        if injected_from is not None:
            snapshot_filter.injected_from.CopyFrom(to_date(injected_from))
        if injected_to is not None:
            snapshot_filter.injected_to.CopyFrom(to_date(injected_to))
        request = registry_pb2.CreateSnapshotRequest(
            as_of=to_timestamp(as_of),
            filter=snapshot_filter,
            label_rule_version=label_rule_version,
            split_seed=split_seed,
            description=description,
        )
        if fractions is not None:
            train, validation, test = fractions
            request.fractions.CopyFrom(
                dataset_pb2.SplitFractions(train=train, validation=validation, test=test)
            )
        return self._unary(
            "Registry/CreateSnapshot",
            self.registry.CreateSnapshot,
            request,
            registry_pb2.CreateSnapshotResponse,
        )

    def get_snapshot(self, snapshot_id: str) -> dataset_pb2.Snapshot:
        """A snapshot's metadata (NotFoundError when unknown)."""
        request = registry_pb2.GetSnapshotRequest(snapshot_id=snapshot_id)
        return self._unary(
            "Registry/GetSnapshot", self.registry.GetSnapshot, request, registry_pb2.GetSnapshotResponse
        ).snapshot

    def iter_snapshot_rows(
        self, snapshot_id: str, split: int | str | None = None
    ) -> Iterator[dataset_pb2.Snapshot | dataset_pb2.SnapshotRow]:
        """The raw ExportSnapshot stream, checked: the Snapshot first, then rows in order."""
        rpc = "Registry/ExportSnapshot"
        request = registry_pb2.ExportSnapshotRequest(
            snapshot_id=snapshot_id,
            split=cast(Any, enum_value(dataset_pb2.Split, split) if split is not None else 0),
        )
        seen_metadata = False
        last_index = -1
        for message in self._server_stream(rpc, self.registry.ExportSnapshot, request):
            part = message.WhichOneof("part")
            if part == "snapshot":
                if seen_metadata:
                    raise ProtocolError("a second snapshot message in the export", rpc=rpc)
                seen_metadata = True
                yield message.snapshot
            elif part == "row":
                if not seen_metadata:
                    raise ProtocolError("a row before the snapshot metadata", rpc=rpc)
                if message.row.index <= last_index:
                    raise IntegrityError(
                        f"row index {message.row.index} after {last_index}: not in index order", rpc=rpc
                    )
                last_index = message.row.index
                yield message.row
            else:
                raise ProtocolError("an export message with neither snapshot nor row", rpc=rpc)
        if not seen_metadata:
            raise ProtocolError("the export ended without the snapshot metadata", rpc=rpc)

    def export_snapshot(self, snapshot_id: str, split: int | str | None = None) -> SnapshotExport:
        """Reads a whole export (all rows, or one split's) and checks the row count against
        the snapshot's counts. ``.to_dicts()``, ``.to_arrow()``, ``.to_pandas()`` convert it."""
        rpc = "Registry/ExportSnapshot"
        stream = self.iter_snapshot_rows(snapshot_id, split)
        first = next(stream)
        assert isinstance(first, dataset_pb2.Snapshot)
        export = SnapshotExport(snapshot=first)
        for row in stream:
            assert isinstance(row, dataset_pb2.SnapshotRow)
            export.rows.append(row)
        split_value = enum_value(dataset_pb2.Split, split) if split is not None else 0
        expected = {
            0: first.row_count,
            dataset_pb2.SPLIT_TRAIN: first.train_count,
            dataset_pb2.SPLIT_VALIDATION: first.validation_count,
            dataset_pb2.SPLIT_TEST: first.test_count,
        }[split_value]
        if len(export.rows) != expected:
            raise IntegrityError(
                f"export of {snapshot_id} has {len(export.rows)} rows, the snapshot says {expected}", rpc=rpc
            )
        return export

    def model_performance(
        self,
        model: ModelLike,
        version: str | None = None,
        *,
        as_of: datetime.datetime | None = None,
        label_rule_version: str = "",
        compare_with: ModelLike | None = None,
    ) -> registry_pb2.GetModelPerformanceResponse:
        """Prospective performance of a model (Registry.GetModelPerformance)."""
        request = registry_pb2.GetModelPerformanceRequest(
            model=model_ref(model, version), label_rule_version=label_rule_version
        )
        if as_of is not None:
            request.as_of.CopyFrom(to_timestamp(as_of))
        if compare_with is not None:
            request.compare_with.CopyFrom(model_ref(compare_with))
        return self._unary(
            "Registry/GetModelPerformance",
            self.registry.GetModelPerformance,
            request,
            registry_pb2.GetModelPerformanceResponse,
        )

    def list_label_rules(self) -> registry_pb2.ListLabelRulesResponse:
        """The configured label rules, default first."""
        return self._unary(
            "Registry/ListLabelRules",
            self.registry.ListLabelRules,
            registry_pb2.ListLabelRulesRequest(),
            registry_pb2.ListLabelRulesResponse,
        )

    # -- preprocess: tensors -------------------------------------------------------------

    def get_spec(self, version: str | None = None) -> preprocess_pb2.GetSpecResponse:
        """A preprocessing spec (the current one by default) and the versions available."""
        request = preprocess_pb2.GetSpecRequest(version=version or "")
        return self._unary(
            "Preprocess/GetSpec", self.preprocess.GetSpec, request, preprocess_pb2.GetSpecResponse
        )

    def prepare(
        self, series_id: str, spec_version: str | None = None, *, max_chunk_bytes: int = 0
    ) -> PreparedTensor:
        """Preprocess.Prepare, assembled and verified (size, offsets, SHA-256, spec version)."""
        request = preprocess_pb2.PrepareRequest(
            series_id=series_id, spec_version=spec_version or "", max_chunk_bytes=max_chunk_bytes
        )
        stream = self._server_stream("Preprocess/Prepare", self.preprocess.Prepare, request)
        try:
            return assemble(stream, expected_spec_version=spec_version)
        finally:
            stream.close()

    def prepare_tensor(
        self, series_id: str, spec_version: str | None = None, *, max_chunk_bytes: int = 0
    ) -> npt.NDArray[np.float32]:
        """The float32 [S, H, W] tensor of a series, exactly as inference sees it."""
        return self.prepare(series_id, spec_version, max_chunk_bytes=max_chunk_bytes).array

    def iter_training_examples(
        self,
        snapshot: str | dataset_pb2.Snapshot | SnapshotExport,
        *,
        split: int | str | None = None,
        spec_version: str | None = None,
        skip_unlabeled: bool = True,
        skip_missing_series: bool = True,
    ) -> Iterator[TrainingExample]:
        """Snapshot rows joined with their tensors, in index order.

        `snapshot` is an id, a Snapshot, or an export already read (then `split` filters its
        rows). Rows without a series are skipped (or raise ValueError with
        ``skip_missing_series=False``); unlabeled rows are skipped unless
        ``skip_unlabeled=False``. A series used by several consecutive rows is fetched once.
        """
        rows: Iterable[dataset_pb2.SnapshotRow]
        if isinstance(snapshot, SnapshotExport):
            wanted = enum_value(dataset_pb2.Split, split) if split is not None else 0
            rows = [r for r in snapshot.rows if not wanted or r.split == wanted]
        else:
            snapshot_id = snapshot if isinstance(snapshot, str) else snapshot.snapshot_id
            rows = (
                m
                for m in self.iter_snapshot_rows(snapshot_id, split)
                if isinstance(m, dataset_pb2.SnapshotRow)
            )
        cached: tuple[str, PreparedTensor] | None = None
        for row in rows:
            label = label_to_int(row.label.label)
            if label is None and skip_unlabeled:
                continue
            if not row.series_id:
                if skip_missing_series:
                    continue
                raise ValueError(f"row {row.index} (episode {row.episode_id}) has no series")
            key = f"{row.series_id}|{row.series_content_sha256}"
            if cached is None or cached[0] != key:
                cached = (key, self.prepare(row.series_id, spec_version))
            prepared = cached[1]
            if row.series_content_sha256 and prepared.header.series_content_sha256 not in (
                "",
                row.series_content_sha256,
            ):
                raise IntegrityError(
                    f"series {row.series_id}: content {prepared.header.series_content_sha256} differs from "
                    f"the snapshot's {row.series_content_sha256}",
                    rpc="Preprocess/Prepare",
                )
            yield TrainingExample(
                row=row_to_dict(row),
                label=label,
                tensor=prepared.array,
                spec_version=prepared.spec_version,
                tensor_sha256=prepared.sha256,
                message=row,
            )


__all__ = [
    "DEFAULT_INFERENCE",
    "DEFAULT_INGEST",
    "DEFAULT_PREPROCESS",
    "DEFAULT_REGISTRY",
    "MetadataInterceptor",
    "ModelLike",
    "ModelListing",
    "TfesiClient",
    "TfesiError",
    "TrainingExample",
    "check_traceparent",
    "model_ref",
    "to_date",
    "to_timestamp",
]
