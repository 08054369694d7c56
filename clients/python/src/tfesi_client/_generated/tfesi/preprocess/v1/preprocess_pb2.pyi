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

class PipelineStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STAGE_UNSPECIFIED: _ClassVar[PipelineStage]
    PIPELINE_STAGE_PREPARE: _ClassVar[PipelineStage]
    PIPELINE_STAGE_PREDICT: _ClassVar[PipelineStage]
    PIPELINE_STAGE_RECORD: _ClassVar[PipelineStage]
PIPELINE_STAGE_UNSPECIFIED: PipelineStage
PIPELINE_STAGE_PREPARE: PipelineStage
PIPELINE_STAGE_PREDICT: PipelineStage
PIPELINE_STAGE_RECORD: PipelineStage

class PrepareRequest(_message.Message):
    __slots__ = ("series_id", "spec_version", "max_chunk_bytes")
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    series_id: str
    spec_version: str
    max_chunk_bytes: int
    def __init__(self, series_id: _Optional[str] = ..., spec_version: _Optional[str] = ..., max_chunk_bytes: _Optional[int] = ...) -> None: ...

class PrepareResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: TensorHeader
    chunk: TensorChunk
    def __init__(self, header: _Optional[_Union[TensorHeader, _Mapping]] = ..., chunk: _Optional[_Union[TensorChunk, _Mapping]] = ...) -> None: ...

class TensorHeader(_message.Message):
    __slots__ = ("tensor", "study_id", "series_id", "series_content_sha256", "geometry", "cache_hit", "compute_time")
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    GEOMETRY_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    tensor: _common_pb2.TensorInfo
    study_id: str
    series_id: str
    series_content_sha256: str
    geometry: TensorGeometry
    cache_hit: bool
    compute_time: _duration_pb2.Duration
    def __init__(self, tensor: _Optional[_Union[_common_pb2.TensorInfo, _Mapping]] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., series_content_sha256: _Optional[str] = ..., geometry: _Optional[_Union[TensorGeometry, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., compute_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TensorGeometry(_message.Message):
    __slots__ = ("orientation", "slice_normal", "slice_positions_mm", "selected_slice_indices", "slice_spacing_mm", "source_pixel_spacing_mm", "source_shape", "target_pixel_spacing_mm", "crop_origin", "obliquity_degrees", "normalisation_bounds")
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    SLICE_NORMAL_FIELD_NUMBER: _ClassVar[int]
    SLICE_POSITIONS_MM_FIELD_NUMBER: _ClassVar[int]
    SELECTED_SLICE_INDICES_FIELD_NUMBER: _ClassVar[int]
    SLICE_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    CROP_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    OBLIQUITY_DEGREES_FIELD_NUMBER: _ClassVar[int]
    NORMALISATION_BOUNDS_FIELD_NUMBER: _ClassVar[int]
    orientation: _containers.RepeatedScalarFieldContainer[float]
    slice_normal: _containers.RepeatedScalarFieldContainer[float]
    slice_positions_mm: _containers.RepeatedScalarFieldContainer[float]
    selected_slice_indices: _containers.RepeatedScalarFieldContainer[int]
    slice_spacing_mm: float
    source_pixel_spacing_mm: _containers.RepeatedScalarFieldContainer[float]
    source_shape: _containers.RepeatedScalarFieldContainer[int]
    target_pixel_spacing_mm: _containers.RepeatedScalarFieldContainer[float]
    crop_origin: _containers.RepeatedScalarFieldContainer[int]
    obliquity_degrees: float
    normalisation_bounds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, orientation: _Optional[_Iterable[float]] = ..., slice_normal: _Optional[_Iterable[float]] = ..., slice_positions_mm: _Optional[_Iterable[float]] = ..., selected_slice_indices: _Optional[_Iterable[int]] = ..., slice_spacing_mm: _Optional[float] = ..., source_pixel_spacing_mm: _Optional[_Iterable[float]] = ..., source_shape: _Optional[_Iterable[int]] = ..., target_pixel_spacing_mm: _Optional[_Iterable[float]] = ..., crop_origin: _Optional[_Iterable[int]] = ..., obliquity_degrees: _Optional[float] = ..., normalisation_bounds: _Optional[_Iterable[float]] = ...) -> None: ...

class TensorChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetSpecRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class GetSpecResponse(_message.Message):
    __slots__ = ("spec", "current_version", "available_versions")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    spec: PreprocessingSpec
    current_version: str
    available_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, spec: _Optional[_Union[PreprocessingSpec, _Mapping]] = ..., current_version: _Optional[str] = ..., available_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class PreprocessingSpec(_message.Message):
    __slots__ = ("version", "slice_count", "target_spacing_mm", "height", "width", "lower_percentile", "upper_percentile", "output_min", "output_max", "description")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SLICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TARGET_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    LOWER_PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    UPPER_PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MIN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MAX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    version: str
    slice_count: int
    target_spacing_mm: float
    height: int
    width: int
    lower_percentile: float
    upper_percentile: float
    output_min: float
    output_max: float
    description: str
    def __init__(self, version: _Optional[str] = ..., slice_count: _Optional[int] = ..., target_spacing_mm: _Optional[float] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., lower_percentile: _Optional[float] = ..., upper_percentile: _Optional[float] = ..., output_min: _Optional[float] = ..., output_max: _Optional[float] = ..., description: _Optional[str] = ...) -> None: ...

class GetPipelineStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPipelineStatusResponse(_message.Message):
    __slots__ = ("queue_depth", "pending", "in_flight", "dead_letter_count", "consumer_count", "oldest_pending_age", "completed_since_start", "as_of")
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_COUNT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_SINCE_START_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    queue_depth: int
    pending: int
    in_flight: int
    dead_letter_count: int
    consumer_count: int
    oldest_pending_age: _duration_pb2.Duration
    completed_since_start: int
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, queue_depth: _Optional[int] = ..., pending: _Optional[int] = ..., in_flight: _Optional[int] = ..., dead_letter_count: _Optional[int] = ..., consumer_count: _Optional[int] = ..., oldest_pending_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., completed_since_start: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("job_id", "study_id", "series_id", "stage", "reason_code", "message", "attempts", "first_failed_at", "dead_lettered_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    study_id: str
    series_id: str
    stage: PipelineStage
    reason_code: str
    message: str
    attempts: int
    first_failed_at: _timestamp_pb2.Timestamp
    dead_lettered_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., stage: _Optional[_Union[PipelineStage, str]] = ..., reason_code: _Optional[str] = ..., message: _Optional[str] = ..., attempts: _Optional[int] = ..., first_failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_lettered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "page")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    page: _common_pb2.PageResponse
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RetryDeadLetterRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RetryDeadLetterResponse(_message.Message):
    __slots__ = ("job_id", "requeued")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    requeued: bool
    def __init__(self, job_id: _Optional[str] = ..., requeued: _Optional[bool] = ...) -> None: ...
