"""The client against an in-process gRPC server that fakes preprocess, inference and registry.

Checks what only a real channel shows: metadata on every call (bearer token, traceparent),
streams in both directions, and statuses turned into exceptions.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest
from helpers import make_row

from tfesi_client import (
    AbortedError,
    IntegrityError,
    NotFoundError,
    TfesiClient,
    UnauthenticatedError,
    common_pb2,
    dataset_pb2,
    inference_pb2,
    inference_pb2_grpc,
    preprocess_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from tfesi_client.client import check_traceparent
from tfesi_client.tensors import split_tensor

TOKEN = "header.payload.signature"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SERIES_A = "33333333-0000-4000-8000-00000000000a"
SERIES_B = "33333333-0000-4000-8000-00000000000b"


def tensor_for(series_id: str) -> np.ndarray:
    seed = int(hashlib.sha256(series_id.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).random((3, 8, 6), dtype=np.float32)


class Recorder:
    """Metadata of every call the fake services received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def record(self, rpc: str, context: grpc.ServicerContext) -> dict[str, str]:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.calls.append((rpc, metadata))
        if metadata.get("authorization") == "Bearer expired":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")
        return metadata


class FakePreprocess(preprocess_pb2_grpc.PreprocessServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.prepared: list[str] = []
        self.corrupt = False

    def Prepare(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.recorder.record("Prepare", context)
        if request.series_id not in (SERIES_A, SERIES_B):
            context.abort(grpc.StatusCode.NOT_FOUND, f"series {request.series_id} unknown")
        self.prepared.append(request.series_id)
        chunk = request.max_chunk_bytes or 64
        messages = split_tensor(
            tensor_for(request.series_id),
            chunk_bytes=chunk,
            spec_version=request.spec_version or "tfesi-prep-v1",
            series_id=request.series_id,
        )
        messages[0].header.series_content_sha256 = "c" * 64
        if self.corrupt:
            messages[-1].chunk.data = b"\0" * len(messages[-1].chunk.data)
        yield from messages


class FakeInference(inference_pb2_grpc.InferenceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.registered: dict[tuple[str, str], bytes] = {}
        self.champion = common_pb2.ModelRef(name="tfesi-test", version="1")

    def RegisterModel(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        self.recorder.record("RegisterModel", context)
        first = next(request_iterator)
        if first.WhichOneof("part") != "header":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "header missing or not first")
        header = first.header
        data = b""
        for message in request_iterator:
            if message.WhichOneof("part") != "chunk":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "second header")
            data += message.chunk
        if len(data) != header.size_bytes or hashlib.sha256(data).hexdigest() != header.sha256:
            context.abort(grpc.StatusCode.DATA_LOSS, "size or sha256 mismatch")
        card = json.loads(header.card_json)
        if (card["name"], card["version"]) != (header.model.name, header.model.version):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "card name/version differ from the header")
        key = (header.model.name, header.model.version)
        created = key not in self.registered
        self.registered[key] = data
        info = inference_pb2.ModelInfo(
            card=inference_pb2.ModelCard(model=header.model, card_json=header.card_json),
            serving_state=inference_pb2.SERVING_STATE_SHADOW
            if header.set_as_shadow
            else inference_pb2.SERVING_STATE_IDLE,
            sha256=header.sha256,
            size_bytes=header.size_bytes,
        )
        return inference_pb2.RegisterModelResponse(model=info, created=created)

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.recorder.record("ListModels", context)
        # Two pages of one model each, to exercise paging.
        version = "2" if request.page.page_token else "1"
        response = inference_pb2.ListModelsResponse(
            models=[
                inference_pb2.ModelInfo(
                    card=inference_pb2.ModelCard(
                        model=common_pb2.ModelRef(name="tfesi-test", version=version)
                    )
                )
            ],
            champion=self.champion,
        )
        response.page.next_page_token = "" if request.page.page_token else "page-2"
        return response

    def Promote(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.recorder.record("Promote", context)
        if request.HasField("expected_champion") and request.expected_champion != self.champion:
            context.abort(grpc.StatusCode.ABORTED, "expected_champion is not the champion")
        previous, self.champion = self.champion, request.model
        return inference_pb2.PromoteResponse(champion=self.champion, previous_champion=previous)


class FakeRegistry(registry_pb2_grpc.RegistryServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.rows = [
            make_row(0, series_id=SERIES_A, content="c" * 64),
            make_row(1, series_id=SERIES_A, content="c" * 64, split=dataset_pb2.SPLIT_TEST),
            make_row(2, label=common_pb2.OUTCOME_LABEL_UNSPECIFIED),
            make_row(3, series_id="", label=common_pb2.OUTCOME_LABEL_POOR),
            make_row(4, series_id=SERIES_B, content="c" * 64, label=common_pb2.OUTCOME_LABEL_POOR),
        ]
        self.drop_last_row = False
        self.last_create: Any = None

    def _snapshot(self) -> dataset_pb2.Snapshot:
        return dataset_pb2.Snapshot(
            snapshot_id="e" * 64,
            row_count=len(self.rows),
            train_count=sum(r.split == dataset_pb2.SPLIT_TRAIN for r in self.rows),
            test_count=sum(r.split == dataset_pb2.SPLIT_TEST for r in self.rows),
        )

    def CreateSnapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.recorder.record("CreateSnapshot", context)
        self.last_create = request
        return registry_pb2.CreateSnapshotResponse(snapshot=self._snapshot(), created=True)

    def ExportSnapshot(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.recorder.record("ExportSnapshot", context)
        if request.snapshot_id != "e" * 64:
            context.abort(grpc.StatusCode.NOT_FOUND, "snapshot unknown")
        yield registry_pb2.ExportSnapshotResponse(snapshot=self._snapshot())
        rows = [r for r in self.rows if not request.split or r.split == request.split]
        if self.drop_last_row:
            rows = rows[:-1]
        for row in rows:
            yield registry_pb2.ExportSnapshotResponse(row=row)

    def GetModelPerformance(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.recorder.record("GetModelPerformance", context)
        return registry_pb2.GetModelPerformanceResponse(
            model=request.model,
            label_rule_version=request.label_rule_version or "leg-50-v1",
            metrics=dataset_pb2.MetricSet(labeled_count=0, threshold=0.5),
        )


class Fakes:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.preprocess = FakePreprocess(self.recorder)
        self.inference = FakeInference(self.recorder)
        self.registry = FakeRegistry(self.recorder)


@pytest.fixture()
def fakes() -> Iterator[tuple[Fakes, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    state = Fakes()
    preprocess_pb2_grpc.add_PreprocessServicer_to_server(state.preprocess, server)
    inference_pb2_grpc.add_InferenceServicer_to_server(state.inference, server)
    registry_pb2_grpc.add_RegistryServicer_to_server(state.registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield state, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture()
def client(fakes: tuple[Fakes, str]) -> Iterator[TfesiClient]:
    _, address = fakes
    with TfesiClient(
        preprocess=address,
        inference=address,
        registry=address,
        ingest=address,
        token=TOKEN,
        traceparent=TRACEPARENT,
        timeout=10,
    ) as c:
        yield c


def test_every_call_carries_token_and_traceparent(fakes: tuple[Fakes, str], client: TfesiClient) -> None:
    state, _ = fakes
    client.list_models()
    client.prepare_tensor(SERIES_A)
    client.export_snapshot("e" * 64)
    client.model_performance("tfesi-test/1")
    assert {rpc for rpc, _ in state.recorder.calls} == {
        "ListModels",
        "Prepare",
        "ExportSnapshot",
        "GetModelPerformance",
    }
    for rpc, metadata in state.recorder.calls:
        assert metadata.get("authorization") == f"Bearer {TOKEN}", rpc
        assert metadata.get("traceparent") == TRACEPARENT, rpc


def test_token_source_is_called_per_call_and_can_be_absent(fakes: tuple[Fakes, str]) -> None:
    state, address = fakes
    tokens = iter(["t1", "t2"])
    with TfesiClient(inference=address, token=lambda: next(tokens)) as c:
        c.list_models()  # two pages: two calls
    seen = [m.get("authorization") for _, m in state.recorder.calls]
    assert seen == ["Bearer t1", "Bearer t2"]
    state.recorder.calls.clear()
    with TfesiClient(inference=address) as c:
        c.list_models()
    assert all("authorization" not in m and "traceparent" not in m for _, m in state.recorder.calls)


def test_unauthenticated_status_is_raised(fakes: tuple[Fakes, str]) -> None:
    _, address = fakes
    with TfesiClient(inference=address, token="expired") as c:
        with pytest.raises(UnauthenticatedError, match="token expired") as caught:
            c.list_models()
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.rpc == "Inference/ListModels"


def test_malformed_traceparent_is_refused() -> None:
    assert check_traceparent(TRACEPARENT) == TRACEPARENT
    for bad in ("00-xyz", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", TRACEPARENT.upper()):
        with pytest.raises(ValueError):
            TfesiClient(traceparent=bad)


def test_list_models_follows_pages(client: TfesiClient) -> None:
    listing = client.list_models()
    assert [m.card.model.version for m in listing.models] == ["1", "2"]
    assert listing.champion == common_pb2.ModelRef(name="tfesi-test", version="1")
    assert listing.shadow is None
    assert listing.find("tfesi-test", "2") is not None and listing.find("x", "1") is None


@pytest.mark.parametrize("max_chunk_bytes", [0, 4096])
def test_prepare_tensor_over_the_wire(client: TfesiClient, max_chunk_bytes: int) -> None:
    prepared = client.prepare(SERIES_B, "tfesi-prep-v1", max_chunk_bytes=max_chunk_bytes)
    np.testing.assert_array_equal(prepared.array, tensor_for(SERIES_B))
    assert prepared.spec_version == "tfesi-prep-v1"
    assert prepared.header.series_id == SERIES_B


def test_prepare_errors(fakes: tuple[Fakes, str], client: TfesiClient) -> None:
    state, _ = fakes
    with pytest.raises(NotFoundError, match="unknown") as caught:
        client.prepare_tensor("44444444-0000-4000-8000-000000000000")
    assert caught.value.rpc == "Preprocess/Prepare"
    state.preprocess.corrupt = True
    with pytest.raises(IntegrityError, match="sha256"):
        client.prepare_tensor(SERIES_A)


def test_register_model_streams_the_file(
    fakes: tuple[Fakes, str], client: TfesiClient, tmp_path: pathlib.Path
) -> None:
    state, _ = fakes
    payload = np.random.default_rng(3).bytes(300_000)
    (tmp_path / "model.onnx").write_bytes(payload)
    (tmp_path / "model.json").write_text(json.dumps({"name": "tfesi-test", "version": "3"}))
    response = client.register_model(
        tmp_path / "model.onnx", tmp_path / "model.json", set_as_shadow=True, chunk_bytes=64 * 1024
    )
    assert response.created
    assert response.model.serving_state == inference_pb2.SERVING_STATE_SHADOW
    assert response.model.sha256 == hashlib.sha256(payload).hexdigest()
    assert state.inference.registered[("tfesi-test", "3")] == payload
    again = client.register_model(tmp_path / "model.onnx", tmp_path / "model.json")
    assert not again.created


def test_a_failing_request_stream_raises_its_own_error(client: TfesiClient, tmp_path: pathlib.Path) -> None:
    def requests() -> Iterator[inference_pb2.RegisterModelRequest]:
        yield inference_pb2.RegisterModelRequest(header=inference_pb2.RegisterModelHeader())
        raise ValueError("disk went away")

    with pytest.raises(ValueError, match="disk went away"):
        client._client_stream(
            "Inference/RegisterModel",
            client.inference.RegisterModel,
            requests(),
            inference_pb2.RegisterModelResponse,
        )


def test_promote_maps_aborted(client: TfesiClient) -> None:
    with pytest.raises(AbortedError):
        client.promote("tfesi-test", "3", reason="better", expected_champion=("tfesi-test", "9"))
    response = client.promote("tfesi-test", "3", reason="better", expected_champion="tfesi-test/1")
    assert response.champion.version == "3" and response.previous_champion.version == "1"


def test_create_snapshot_builds_the_request(fakes: tuple[Fakes, str], client: TfesiClient) -> None:
    import datetime

    state, _ = fakes
    response = client.create_snapshot(
        indications=["herniated_disc"],
        levels=["l4_l5", common_pb2.SPINAL_LEVEL_L5_S1],
        injected_from=datetime.date(2025, 1, 1),
        require_study=True,
        split_seed=7,
        fractions=(0.8, 0.1, 0.1),
        label_rule_version="leg-50-v1",
        description="nightly",
    )
    assert response.created and response.snapshot.snapshot_id == "e" * 64
    request = state.registry.last_create
    assert list(request.filter.indications) == [common_pb2.INDICATION_HERNIATED_DISC]
    assert list(request.filter.levels) == [common_pb2.SPINAL_LEVEL_L4_L5, common_pb2.SPINAL_LEVEL_L5_S1]
    assert request.filter.injected_from == common_pb2.Date(year=2025, month=1, day=1)
    assert not request.filter.HasField("injected_to")
    assert request.filter.require_study and request.split_seed == 7
    assert request.fractions.train == pytest.approx(0.8)
    as_of = request.as_of.ToDatetime(tzinfo=datetime.UTC)
    now = datetime.datetime.now(datetime.UTC)
    assert as_of.microsecond == 0 and now - datetime.timedelta(seconds=10) < as_of <= now


def test_export_snapshot_reads_and_checks_counts(fakes: tuple[Fakes, str], client: TfesiClient) -> None:
    state, _ = fakes
    export = client.export_snapshot("e" * 64)
    assert export.snapshot_id == "e" * 64
    assert [r.index for r in export] == [0, 1, 2, 3, 4]
    assert [d["label"] for d in export.to_dicts()] == ["good", "good", None, "poor", "poor"]
    assert [r.index for r in client.export_snapshot("e" * 64, split="test")] == [1]
    with pytest.raises(NotFoundError):
        client.export_snapshot("0" * 64)
    state.registry.drop_last_row = True
    with pytest.raises(IntegrityError, match="has 4 rows, the snapshot says 5"):
        client.export_snapshot("e" * 64)


def test_iter_training_examples_joins_rows_and_tensors(fakes: tuple[Fakes, str], client: TfesiClient) -> None:
    state, _ = fakes
    examples = list(client.iter_training_examples("e" * 64, spec_version="tfesi-prep-v1"))
    # Row 2 is unlabeled and row 3 has no series: both skipped.
    assert [e.row["index"] for e in examples] == [0, 1, 4]
    assert [e.label for e in examples] == [1, 1, 0]
    np.testing.assert_array_equal(examples[0].tensor, tensor_for(SERIES_A))
    np.testing.assert_array_equal(examples[2].tensor, tensor_for(SERIES_B))
    assert all(e.spec_version == "tfesi-prep-v1" for e in examples)
    # Rows 0 and 1 share a series: fetched once.
    assert state.preprocess.prepared == [SERIES_A, SERIES_B]

    export = client.export_snapshot("e" * 64)
    train = list(client.iter_training_examples(export, split="train"))
    assert [e.row["index"] for e in train] == [0, 4]
    with pytest.raises(ValueError, match="has no series"):
        list(client.iter_training_examples(export, skip_missing_series=False))
