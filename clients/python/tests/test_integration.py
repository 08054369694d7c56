"""The client against the real tfesi-inference and tfesi-registry binaries.

Starts both on free ports (inference on a private copy of models/, registry on a fresh
Postgres database) and runs a retraining job's calls: list, register a new version, shadow,
promote, rollback, snapshot and export on the empty registry, performance.

Both services check bearer tokens like production: they accept tokens signed with a secret
written for the test, and the tokens are minted by the real `tfesi token` command.

Skipped, with the reason, when the binaries are not built (`cargo build --workspace --bins`,
which scripts/test.sh does), when Postgres does not answer on
127.0.0.1:5432, or when no Python with onnx is found to build the test model.
Set TFESI_BIN_DIR to use binaries from another directory than <repo>/target/debug.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from tfesi_client import (
    AbortedError,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    TfesiClient,
    TfesiError,
    UnauthenticatedError,
    inference_pb2,
)

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[3]
BIN_DIR = pathlib.Path(os.environ.get("TFESI_BIN_DIR", REPO / "target" / "debug"))
POSTGRES = ("127.0.0.1", 5432)
MAKE_TEST_MODEL = REPO / "services" / "inference" / "models" / "make_test_model.py"
TRACEPARENT = "00-5c1b0a2e9d8f47b6a3c2d1e0f9a8b7c6-1a2b3c4d5e6f7a8b-01"
START_WITHIN_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def _python_with_onnx() -> str | None:
    for candidate in (REPO / ".venv" / "bin" / "python", pathlib.Path(sys.executable)):
        if candidate.exists():
            check = subprocess.run(
                [str(candidate), "-c", "import onnx, onnxruntime, numpy"], capture_output=True
            )
            if check.returncode == 0:
                return str(candidate)
    return None


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path
    address: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        return self.process.returncode


def _start(binary: str, service: str, env: dict[str, str], log_dir: pathlib.Path) -> Service:
    address = f"127.0.0.1:{_free_port()}"
    prefix = f"TFESI_{service.upper()}__"
    full_env = {k: v for k, v in os.environ.items() if k != "TFESI_CONFIG"}
    full_env.update(
        {
            f"{prefix}SERVER__LISTEN": address,
            f"{prefix}SERVER__DRAIN_TIMEOUT_MS": "5000",
            f"{prefix}TELEMETRY__LOG_FORMAT": "json",
            f"{prefix}TELEMETRY__LOG_FILTER": "info",
            **env,
        }
    )
    log_path = log_dir / f"{binary}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN_DIR / binary)],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Service(service, process, log_path, address)


def _wait_ready(service: Service, probe: object) -> None:
    deadline = time.monotonic() + START_WITHIN_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited with {service.process.returncode}:\n{service.log()}")
        try:
            probe()  # type: ignore[operator]
            return
        except TfesiError as error:
            last = error
            time.sleep(0.25)
    pytest.fail(f"{service.name} not ready within {START_WITHIN_S}s ({last}):\n{service.log()}")


def _drop_database(name: str) -> None:
    psql = shutil.which("psql")
    if psql:
        subprocess.run(
            [
                psql,
                "-h",
                POSTGRES[0],
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            ],
            capture_output=True,
            timeout=30,
        )


@dataclass
class Stack:
    inference: Service
    registry: Service
    client: TfesiClient
    tmp: pathlib.Path
    python: str
    secret: pathlib.Path

    def token(self, *roles: str) -> str:
        return _mint(self.secret, roles)


def _mint(secret: pathlib.Path, roles: tuple[str, ...]) -> str:
    """A token signed with the stack's secret, minted by the real `tfesi token` command."""
    args = [str(BIN_DIR / "tfesi"), "token", "--secret-file", str(secret), "--subject", "pytest"]
    for role in roles:
        args += ["--role", role]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"tfesi token failed: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = [b for b in ("tfesi-inference", "tfesi-registry", "tfesi") if not (BIN_DIR / b).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not built in {BIN_DIR}: cargo build --workspace --bins")
    if not _reachable(POSTGRES):
        pytest.skip("Postgres does not answer on 127.0.0.1:5432 (scripts/setup.sh starts it)")
    python = _python_with_onnx()
    if python is None:
        pytest.skip(
            "no Python with onnx and onnxruntime to build the test model (scripts/setup.sh makes .venv)"
        )
    tmp = tmp_path_factory.mktemp("stack")
    models = tmp / "models"
    # The small untrained test model only (the trained default, tfesi-cnn, is not needed here).
    shutil.copytree(REPO / "models" / "tfesi-test", models / "tfesi-test")
    secret = tmp / "hs256.secret"
    secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    database = f"tfesi_pyclient_{uuid.uuid4().hex[:12]}"
    inference = _start(
        "tfesi-inference",
        "inference",
        {
            "TFESI_INFERENCE__REPOSITORY_DIR": str(models),
            "TFESI_INFERENCE__DEFAULT_MODEL": "tfesi-test",
            "TFESI_INFERENCE__AUTH__HS256_SECRET_FILE": str(secret),
        },
        tmp,
    )
    registry = _start(
        "tfesi-registry",
        "registry",
        {
            "TFESI_REGISTRY__DATABASE__URL": f"postgres://postgres@127.0.0.1:5432/{database}",
            "TFESI_REGISTRY__AUTH__HS256_SECRET_FILE": str(secret),
        },
        tmp,
    )
    # A retraining job's identity: the mlops role.
    client = TfesiClient(
        inference=inference.address,
        registry=registry.address,
        traceparent=TRACEPARENT,
        timeout=30,
        token=_mint(secret, ("mlops",)),
    )
    try:
        _wait_ready(inference, client.list_models)
        _wait_ready(registry, client.list_label_rules)
        yield Stack(inference, registry, client, tmp, python, secret)
    finally:
        client.close()
        codes = {s.name: s.stop() for s in (inference, registry)}
        _drop_database(database)
    assert codes == {"inference": 0, "registry": 0}, f"unclean exits {codes}"


def test_model_lifecycle(stack: Stack) -> None:
    client = stack.client
    listing = client.list_models()
    bundled = listing.find("tfesi-test", "1")
    assert bundled is not None and bundled.self_test.passed
    assert listing.champion is not None and listing.champion.version == "1"
    assert listing.shadow is None

    # A new version: same graph, other weights (services/inference/models/make_test_model.py).
    out = stack.tmp / "tfesi-test-3"
    subprocess.run(
        [stack.python, str(MAKE_TEST_MODEL), str(out), "--version", "3", "--seed", "9"],
        check=True,
        capture_output=True,
    )
    assert json.loads((out / "model.json").read_text())["version"] == "3"
    registered = client.register_model(out / "model.onnx", out / "model.json", chunk_bytes=64 * 1024)
    assert registered.created
    assert registered.self_test.passed
    assert registered.model.serving_state == inference_pb2.SERVING_STATE_IDLE
    assert registered.model.size_bytes == (out / "model.onnx").stat().st_size
    again = client.register_model(out / "model.onnx", out / "model.json")
    assert not again.created and again.model.sha256 == registered.model.sha256

    shadow = client.set_shadow("tfesi-test", "3", reason="python client integration test")
    assert (shadow.shadow.name, shadow.shadow.version) == ("tfesi-test", "3")
    listing = client.list_models()
    assert listing.shadow is not None and listing.shadow.version == "3"
    assert client.get_model("tfesi-test/3").serving_state == inference_pb2.SERVING_STATE_SHADOW

    with pytest.raises(FailedPreconditionError) as caught:
        client.set_shadow("tfesi-test", "1", reason="the champion cannot be the shadow")
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(NotFoundError):
        client.promote("tfesi-test", "404", reason="no such version")
    with pytest.raises(AbortedError):
        client.promote("tfesi-test", "3", reason="stale view", expected_champion="tfesi-test/404")

    promoted = client.promote("tfesi-test", "3", reason="better", expected_champion=("tfesi-test", "1"))
    assert promoted.champion.version == "3"
    assert promoted.previous_champion.version == "1"
    assert not promoted.HasField("shadow")  # the shadow became the champion

    with pytest.raises(AbortedError):
        client.rollback(reason="wrong expectation", expected_champion="tfesi-test/1")
    rolled = client.rollback(reason="revert", expected_champion="tfesi-test/3")
    assert rolled.champion.version == "1" and rolled.rolled_back.version == "3"
    assert client.list_models().champion.version == "1"  # type: ignore[union-attr]

    cleared = client.clear_shadow(reason="done")
    assert not cleared.HasField("shadow")


def test_snapshot_of_an_empty_registry(stack: Stack) -> None:
    client = stack.client
    first = client.create_snapshot(split_seed=11, description="python client integration test")
    snapshot = first.snapshot
    assert first.created
    assert len(snapshot.snapshot_id) == 64
    assert snapshot.row_count == 0 and snapshot.patient_count == 0
    again = client.create_snapshot(
        as_of=snapshot.as_of.ToDatetime(), split_seed=11, description="same inputs, same snapshot"
    )
    assert not again.created and again.snapshot.snapshot_id == snapshot.snapshot_id
    assert client.get_snapshot(snapshot.snapshot_id).snapshot_id == snapshot.snapshot_id

    export = client.export_snapshot(snapshot.snapshot_id)
    assert export.snapshot.snapshot_id == snapshot.snapshot_id
    assert export.rows == [] and export.to_dicts() == []
    assert list(client.iter_training_examples(export)) == []
    assert list(client.iter_training_examples(snapshot.snapshot_id)) == []
    with pytest.raises(NotFoundError):
        client.export_snapshot("0" * 64)


def test_model_performance_without_outcomes(stack: Stack) -> None:
    rules = stack.client.list_label_rules().rules
    assert rules and rules[0].version
    # The registry knows a model only once it has a stored prediction. The contract lists no
    # NOT_FOUND for GetModelPerformance, the server answers NOT_FOUND for a model without
    # predictions; both answers are accepted here, each checked.
    try:
        performance = stack.client.model_performance("tfesi-test", "1")
    except NotFoundError as error:
        assert "tfesi-test/1" in error.message
        assert error.rpc == "Registry/GetModelPerformance"
    else:
        assert (performance.model.name, performance.model.version) == ("tfesi-test", "1")
        assert performance.label_rule_version == rules[0].version
        assert performance.metrics.labeled_count == 0
        assert not performance.metrics.HasField("auc")


def test_traceparent_reaches_the_services(stack: Stack) -> None:
    stack.client.list_models()
    trace_id = TRACEPARENT.split("-")[1]
    deadline = time.monotonic() + 5
    while trace_id not in stack.inference.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert trace_id in stack.inference.log(), "the inference log never named the client's trace id"


def test_calls_without_a_token_are_unauthenticated(stack: Stack) -> None:
    with TfesiClient(inference=stack.inference.address, registry=stack.registry.address, timeout=30) as anonymous:
        with pytest.raises(UnauthenticatedError, match="authorization"):
            anonymous.list_models()
        with pytest.raises(UnauthenticatedError):
            anonymous.list_label_rules()
    other_secret = stack.tmp / "other.secret"
    other_secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    forged = _mint(other_secret, ("mlops",))
    with TfesiClient(registry=stack.registry.address, token=forged, timeout=30) as impostor:
        with pytest.raises(UnauthenticatedError, match="signature"):
            impostor.list_label_rules()


def test_a_nurse_may_not_manage_models(stack: Stack) -> None:
    with TfesiClient(inference=stack.inference.address, token=stack.token("nurse"), timeout=30) as nurse:
        with pytest.raises(PermissionDeniedError, match="mlops"):
            nurse.list_models()
