import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tfesi_client._generated.tfesi.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATE_UNSPECIFIED: _ClassVar[ServingState]
    SERVING_STATE_IDLE: _ClassVar[ServingState]
    SERVING_STATE_CHAMPION: _ClassVar[ServingState]
    SERVING_STATE_SHADOW: _ClassVar[ServingState]
SERVING_STATE_UNSPECIFIED: ServingState
SERVING_STATE_IDLE: ServingState
SERVING_STATE_CHAMPION: ServingState
SERVING_STATE_SHADOW: ServingState

class PredictRequest(_message.Message):
    __slots__ = ("rows", "model", "skip_shadow")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SKIP_SHADOW_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[PredictRow]
    model: _common_pb2.ModelRef
    skip_shadow: bool
    def __init__(self, rows: _Optional[_Iterable[_Union[PredictRow, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., skip_shadow: _Optional[bool] = ...) -> None: ...

class PredictRow(_message.Message):
    __slots__ = ("row_id", "image", "clinical", "spec_version", "study_id", "series_id", "job_id")
    ROW_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CLINICAL_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    row_id: str
    image: _common_pb2.Tensor
    clinical: _containers.RepeatedCompositeFieldContainer[_common_pb2.ClinicalFeature]
    spec_version: str
    study_id: str
    series_id: str
    job_id: str
    def __init__(self, row_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., clinical: _Optional[_Iterable[_Union[_common_pb2.ClinicalFeature, _Mapping]]] = ..., spec_version: _Optional[str] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RowResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RowResult, _Mapping]]] = ...) -> None: ...

class RowResult(_message.Message):
    __slots__ = ("row_id", "prediction", "shadow", "shadow_error")
    ROW_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    SHADOW_ERROR_FIELD_NUMBER: _ClassVar[int]
    row_id: str
    prediction: Prediction
    shadow: Prediction
    shadow_error: str
    def __init__(self, row_id: _Optional[str] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ..., shadow: _Optional[_Union[Prediction, _Mapping]] = ..., shadow_error: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("probability", "threshold", "predicted_label", "model", "execution_provider", "role", "spec_version", "batch_size", "latency")
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    probability: float
    threshold: float
    predicted_label: _common_pb2.OutcomeLabel
    model: _common_pb2.ModelRef
    execution_provider: _common_pb2.ExecutionProvider
    role: _common_pb2.ModelRole
    spec_version: str
    batch_size: int
    latency: _duration_pb2.Duration
    def __init__(self, probability: _Optional[float] = ..., threshold: _Optional[float] = ..., predicted_label: _Optional[_Union[_common_pb2.OutcomeLabel, str]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., execution_provider: _Optional[_Union[_common_pb2.ExecutionProvider, str]] = ..., role: _Optional[_Union[_common_pb2.ModelRole, str]] = ..., spec_version: _Optional[str] = ..., batch_size: _Optional[int] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class InputSpec(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: _common_pb2.DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[_common_pb2.DType, str]] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("model", "description", "spec_version", "inputs", "clinical_features", "output_description", "threshold", "training_snapshot_id", "metrics", "intended_use", "limitations", "synthetic", "card_json")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    CLINICAL_FEATURES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    INTENDED_USE_FIELD_NUMBER: _ClassVar[int]
    LIMITATIONS_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    description: str
    spec_version: str
    inputs: _containers.RepeatedCompositeFieldContainer[InputSpec]
    clinical_features: _containers.RepeatedScalarFieldContainer[str]
    output_description: str
    threshold: float
    training_snapshot_id: str
    metrics: _containers.ScalarMap[str, float]
    intended_use: str
    limitations: str
    synthetic: bool
    card_json: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., description: _Optional[str] = ..., spec_version: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[InputSpec, _Mapping]]] = ..., clinical_features: _Optional[_Iterable[str]] = ..., output_description: _Optional[str] = ..., threshold: _Optional[float] = ..., training_snapshot_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., intended_use: _Optional[str] = ..., limitations: _Optional[str] = ..., synthetic: _Optional[bool] = ..., card_json: _Optional[str] = ...) -> None: ...

class SelfTestResult(_message.Message):
    __slots__ = ("passed", "vectors", "max_abs_error", "tolerance", "execution_provider", "message")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_ERROR_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    vectors: int
    max_abs_error: float
    tolerance: float
    execution_provider: _common_pb2.ExecutionProvider
    message: str
    def __init__(self, passed: _Optional[bool] = ..., vectors: _Optional[int] = ..., max_abs_error: _Optional[float] = ..., tolerance: _Optional[float] = ..., execution_provider: _Optional[_Union[_common_pb2.ExecutionProvider, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("card", "serving_state", "sha256", "size_bytes", "registered_at", "registered_by", "self_test")
    CARD_FIELD_NUMBER: _ClassVar[int]
    SERVING_STATE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    SELF_TEST_FIELD_NUMBER: _ClassVar[int]
    card: ModelCard
    serving_state: ServingState
    sha256: str
    size_bytes: int
    registered_at: _timestamp_pb2.Timestamp
    registered_by: str
    self_test: SelfTestResult
    def __init__(self, card: _Optional[_Union[ModelCard, _Mapping]] = ..., serving_state: _Optional[_Union[ServingState, str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., registered_by: _Optional[str] = ..., self_test: _Optional[_Union[SelfTestResult, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page", "name")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    name: str
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "champion", "shadow", "page")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    champion: _common_pb2.ModelRef
    shadow: _common_pb2.ModelRef
    page: _common_pb2.PageResponse
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., champion: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., shadow: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: RegisterModelHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[RegisterModelHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class RegisterModelHeader(_message.Message):
    __slots__ = ("model", "card_json", "sha256", "size_bytes", "set_as_shadow")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SET_AS_SHADOW_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    card_json: str
    sha256: str
    size_bytes: int
    set_as_shadow: bool
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., card_json: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., set_as_shadow: _Optional[bool] = ...) -> None: ...

class RegisterModelResponse(_message.Message):
    __slots__ = ("model", "self_test", "created")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SELF_TEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    self_test: SelfTestResult
    created: bool
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., self_test: _Optional[_Union[SelfTestResult, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("model", "expected_champion", "reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CHAMPION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    expected_champion: _common_pb2.ModelRef
    reason: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., expected_champion: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class PromoteResponse(_message.Message):
    __slots__ = ("champion", "previous_champion", "shadow")
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_CHAMPION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    champion: _common_pb2.ModelRef
    previous_champion: _common_pb2.ModelRef
    shadow: _common_pb2.ModelRef
    def __init__(self, champion: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., previous_champion: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., shadow: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class SetShadowRequest(_message.Message):
    __slots__ = ("model", "clear", "reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    clear: bool
    reason: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., clear: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class SetShadowResponse(_message.Message):
    __slots__ = ("shadow", "previous_shadow")
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SHADOW_FIELD_NUMBER: _ClassVar[int]
    shadow: _common_pb2.ModelRef
    previous_shadow: _common_pb2.ModelRef
    def __init__(self, shadow: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., previous_shadow: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("expected_champion", "reason")
    EXPECTED_CHAMPION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    expected_champion: _common_pb2.ModelRef
    reason: str
    def __init__(self, expected_champion: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("champion", "rolled_back")
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    champion: _common_pb2.ModelRef
    rolled_back: _common_pb2.ModelRef
    def __init__(self, champion: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., rolled_back: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...
