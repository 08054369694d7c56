"""Python client of the TFESI outcome platform, for retraining jobs.

    from tfesi_client import TfesiClient
    with TfesiClient(token=...) as client:
        snapshot = client.create_snapshot(split_seed=7).snapshot
        for example in client.iter_training_examples(snapshot.snapshot_id):
            ...

The generated protobuf modules live in ``tfesi_client._generated.tfesi.<service>.v1``; the
message modules are re-exported here (``tfesi_client.registry_pb2`` etc.).
"""

from tfesi_client._generated.tfesi.common.v1 import common_pb2
from tfesi_client._generated.tfesi.inference.v1 import inference_pb2, inference_pb2_grpc
from tfesi_client._generated.tfesi.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tfesi_client._generated.tfesi.preprocess.v1 import preprocess_pb2, preprocess_pb2_grpc
from tfesi_client._generated.tfesi.registry.v1 import (
    dataset_pb2,
    records_pb2,
    registry_pb2,
    registry_pb2_grpc,
)
from tfesi_client.client import (
    DEFAULT_INFERENCE,
    DEFAULT_INGEST,
    DEFAULT_PREPROCESS,
    DEFAULT_REGISTRY,
    ModelListing,
    TfesiClient,
    TrainingExample,
    model_ref,
)
from tfesi_client.errors import (
    AbortedError,
    AlreadyExistsError,
    DataLossError,
    FailedPreconditionError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    TfesiError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from tfesi_client.snapshots import COLUMNS, SnapshotExport, row_to_dict
from tfesi_client.tensors import PreparedTensor

__version__ = "0.1.0"

__all__ = [
    "COLUMNS",
    "DEFAULT_INFERENCE",
    "DEFAULT_INGEST",
    "DEFAULT_PREPROCESS",
    "DEFAULT_REGISTRY",
    "AbortedError",
    "AlreadyExistsError",
    "DataLossError",
    "FailedPreconditionError",
    "IntegrityError",
    "InvalidArgumentError",
    "ModelListing",
    "NotFoundError",
    "PermissionDeniedError",
    "PreparedTensor",
    "ProtocolError",
    "SnapshotExport",
    "TfesiClient",
    "TfesiError",
    "TrainingExample",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "common_pb2",
    "dataset_pb2",
    "inference_pb2",
    "inference_pb2_grpc",
    "ingest_pb2",
    "ingest_pb2_grpc",
    "model_ref",
    "preprocess_pb2",
    "preprocess_pb2_grpc",
    "records_pb2",
    "registry_pb2",
    "registry_pb2_grpc",
    "row_to_dict",
]
