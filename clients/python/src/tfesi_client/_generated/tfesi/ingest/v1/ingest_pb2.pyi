import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tfesi_client._generated.tfesi.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_OUTCOME_UNSPECIFIED: _ClassVar[InstanceOutcome]
    INSTANCE_OUTCOME_STORED: _ClassVar[InstanceOutcome]
    INSTANCE_OUTCOME_DUPLICATE: _ClassVar[InstanceOutcome]
    INSTANCE_OUTCOME_REJECTED: _ClassVar[InstanceOutcome]
    INSTANCE_OUTCOME_QUARANTINED: _ClassVar[InstanceOutcome]

class InstanceReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_REASON_UNSPECIFIED: _ClassVar[InstanceReason]
    INSTANCE_REASON_TOO_LARGE: _ClassVar[InstanceReason]
    INSTANCE_REASON_SIZE_MISMATCH: _ClassVar[InstanceReason]
    INSTANCE_REASON_CHECKSUM_MISMATCH: _ClassVar[InstanceReason]
    INSTANCE_REASON_NOT_DICOM: _ClassVar[InstanceReason]
    INSTANCE_REASON_NO_FILE_META: _ClassVar[InstanceReason]
    INSTANCE_REASON_MALFORMED: _ClassVar[InstanceReason]
    INSTANCE_REASON_NOT_MR: _ClassVar[InstanceReason]
    INSTANCE_REASON_UNSUPPORTED_TRANSFER_SYNTAX: _ClassVar[InstanceReason]
    INSTANCE_REASON_NO_PIXEL_DATA: _ClassVar[InstanceReason]
    INSTANCE_REASON_PIXEL_DATA_INCONSISTENT: _ClassVar[InstanceReason]
    INSTANCE_REASON_INVALID_RESCALE: _ClassVar[InstanceReason]
    INSTANCE_REASON_MISSING_ATTRIBUTE: _ClassVar[InstanceReason]
    INSTANCE_REASON_BURNED_IN_ANNOTATION: _ClassVar[InstanceReason]
    INSTANCE_REASON_DERIVED_IMAGE: _ClassVar[InstanceReason]
    INSTANCE_REASON_SECONDARY_CAPTURE: _ClassVar[InstanceReason]
    INSTANCE_REASON_PARSER_FAILURE: _ClassVar[InstanceReason]
    INSTANCE_REASON_DEIDENTIFICATION_FAILED: _ClassVar[InstanceReason]

class StudyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_STATE_UNSPECIFIED: _ClassVar[StudyState]
    STUDY_STATE_RECEIVING: _ClassVar[StudyState]
    STUDY_STATE_COMPLETE: _ClassVar[StudyState]

class StudySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_SOURCE_UNSPECIFIED: _ClassVar[StudySource]
    STUDY_SOURCE_GRPC: _ClassVar[StudySource]
    STUDY_SOURCE_DICOM: _ClassVar[StudySource]
    STUDY_SOURCE_MIXED: _ClassVar[StudySource]

class SelectionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_OUTCOME_UNSPECIFIED: _ClassVar[SelectionOutcome]
    SELECTION_OUTCOME_PENDING: _ClassVar[SelectionOutcome]
    SELECTION_OUTCOME_SELECTED: _ClassVar[SelectionOutcome]
    SELECTION_OUTCOME_NO_ELIGIBLE_SERIES: _ClassVar[SelectionOutcome]

class ProcessingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESSING_STATE_UNSPECIFIED: _ClassVar[ProcessingState]
    PROCESSING_STATE_NOT_STARTED: _ClassVar[ProcessingState]
    PROCESSING_STATE_QUEUED: _ClassVar[ProcessingState]
    PROCESSING_STATE_IN_PROGRESS: _ClassVar[ProcessingState]
    PROCESSING_STATE_SUCCEEDED: _ClassVar[ProcessingState]
    PROCESSING_STATE_DEAD_LETTER: _ClassVar[ProcessingState]

class Plane(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLANE_UNSPECIFIED: _ClassVar[Plane]
    PLANE_SAGITTAL: _ClassVar[Plane]
    PLANE_AXIAL: _ClassVar[Plane]
    PLANE_CORONAL: _ClassVar[Plane]
    PLANE_OBLIQUE: _ClassVar[Plane]
    PLANE_MIXED: _ClassVar[Plane]

class Weighting(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHTING_UNSPECIFIED: _ClassVar[Weighting]
    WEIGHTING_T1: _ClassVar[Weighting]
    WEIGHTING_T2: _ClassVar[Weighting]
    WEIGHTING_STIR: _ClassVar[Weighting]
    WEIGHTING_PD: _ClassVar[Weighting]
    WEIGHTING_OTHER: _ClassVar[Weighting]

class SeriesDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERIES_DECISION_UNSPECIFIED: _ClassVar[SeriesDecision]
    SERIES_DECISION_SELECTED: _ClassVar[SeriesDecision]
    SERIES_DECISION_ELIGIBLE_NOT_CHOSEN: _ClassVar[SeriesDecision]
    SERIES_DECISION_REJECTED: _ClassVar[SeriesDecision]

class SelectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_REASON_UNSPECIFIED: _ClassVar[SelectionReason]
    SELECTION_REASON_T2_SAGITTAL: _ClassVar[SelectionReason]
    SELECTION_REASON_BEST_CANDIDATE: _ClassVar[SelectionReason]
    SELECTION_REASON_LOWER_RANK: _ClassVar[SelectionReason]
    SELECTION_REASON_NOT_SAGITTAL: _ClassVar[SelectionReason]
    SELECTION_REASON_NOT_T2: _ClassVar[SelectionReason]
    SELECTION_REASON_STIR: _ClassVar[SelectionReason]
    SELECTION_REASON_TOO_FEW_SLICES: _ClassVar[SelectionReason]
    SELECTION_REASON_MISSING_GEOMETRY: _ClassVar[SelectionReason]
    SELECTION_REASON_INCONSISTENT_GEOMETRY: _ClassVar[SelectionReason]
    SELECTION_REASON_LOCALIZER: _ClassVar[SelectionReason]
    SELECTION_REASON_TIMING_MISSING: _ClassVar[SelectionReason]
    SELECTION_REASON_DESCRIPTION_CONFLICT: _ClassVar[SelectionReason]
    SELECTION_REASON_QUARANTINED: _ClassVar[SelectionReason]
    SELECTION_REASON_INCONSISTENT_MATRIX: _ClassVar[SelectionReason]
INSTANCE_OUTCOME_UNSPECIFIED: InstanceOutcome
INSTANCE_OUTCOME_STORED: InstanceOutcome
INSTANCE_OUTCOME_DUPLICATE: InstanceOutcome
INSTANCE_OUTCOME_REJECTED: InstanceOutcome
INSTANCE_OUTCOME_QUARANTINED: InstanceOutcome
INSTANCE_REASON_UNSPECIFIED: InstanceReason
INSTANCE_REASON_TOO_LARGE: InstanceReason
INSTANCE_REASON_SIZE_MISMATCH: InstanceReason
INSTANCE_REASON_CHECKSUM_MISMATCH: InstanceReason
INSTANCE_REASON_NOT_DICOM: InstanceReason
INSTANCE_REASON_NO_FILE_META: InstanceReason
INSTANCE_REASON_MALFORMED: InstanceReason
INSTANCE_REASON_NOT_MR: InstanceReason
INSTANCE_REASON_UNSUPPORTED_TRANSFER_SYNTAX: InstanceReason
INSTANCE_REASON_NO_PIXEL_DATA: InstanceReason
INSTANCE_REASON_PIXEL_DATA_INCONSISTENT: InstanceReason
INSTANCE_REASON_INVALID_RESCALE: InstanceReason
INSTANCE_REASON_MISSING_ATTRIBUTE: InstanceReason
INSTANCE_REASON_BURNED_IN_ANNOTATION: InstanceReason
INSTANCE_REASON_DERIVED_IMAGE: InstanceReason
INSTANCE_REASON_SECONDARY_CAPTURE: InstanceReason
INSTANCE_REASON_PARSER_FAILURE: InstanceReason
INSTANCE_REASON_DEIDENTIFICATION_FAILED: InstanceReason
STUDY_STATE_UNSPECIFIED: StudyState
STUDY_STATE_RECEIVING: StudyState
STUDY_STATE_COMPLETE: StudyState
STUDY_SOURCE_UNSPECIFIED: StudySource
STUDY_SOURCE_GRPC: StudySource
STUDY_SOURCE_DICOM: StudySource
STUDY_SOURCE_MIXED: StudySource
SELECTION_OUTCOME_UNSPECIFIED: SelectionOutcome
SELECTION_OUTCOME_PENDING: SelectionOutcome
SELECTION_OUTCOME_SELECTED: SelectionOutcome
SELECTION_OUTCOME_NO_ELIGIBLE_SERIES: SelectionOutcome
PROCESSING_STATE_UNSPECIFIED: ProcessingState
PROCESSING_STATE_NOT_STARTED: ProcessingState
PROCESSING_STATE_QUEUED: ProcessingState
PROCESSING_STATE_IN_PROGRESS: ProcessingState
PROCESSING_STATE_SUCCEEDED: ProcessingState
PROCESSING_STATE_DEAD_LETTER: ProcessingState
PLANE_UNSPECIFIED: Plane
PLANE_SAGITTAL: Plane
PLANE_AXIAL: Plane
PLANE_CORONAL: Plane
PLANE_OBLIQUE: Plane
PLANE_MIXED: Plane
WEIGHTING_UNSPECIFIED: Weighting
WEIGHTING_T1: Weighting
WEIGHTING_T2: Weighting
WEIGHTING_STIR: Weighting
WEIGHTING_PD: Weighting
WEIGHTING_OTHER: Weighting
SERIES_DECISION_UNSPECIFIED: SeriesDecision
SERIES_DECISION_SELECTED: SeriesDecision
SERIES_DECISION_ELIGIBLE_NOT_CHOSEN: SeriesDecision
SERIES_DECISION_REJECTED: SeriesDecision
SELECTION_REASON_UNSPECIFIED: SelectionReason
SELECTION_REASON_T2_SAGITTAL: SelectionReason
SELECTION_REASON_BEST_CANDIDATE: SelectionReason
SELECTION_REASON_LOWER_RANK: SelectionReason
SELECTION_REASON_NOT_SAGITTAL: SelectionReason
SELECTION_REASON_NOT_T2: SelectionReason
SELECTION_REASON_STIR: SelectionReason
SELECTION_REASON_TOO_FEW_SLICES: SelectionReason
SELECTION_REASON_MISSING_GEOMETRY: SelectionReason
SELECTION_REASON_INCONSISTENT_GEOMETRY: SelectionReason
SELECTION_REASON_LOCALIZER: SelectionReason
SELECTION_REASON_TIMING_MISSING: SelectionReason
SELECTION_REASON_DESCRIPTION_CONFLICT: SelectionReason
SELECTION_REASON_QUARANTINED: SelectionReason
SELECTION_REASON_INCONSISTENT_MATRIX: SelectionReason

class UploadRequest(_message.Message):
    __slots__ = ("begin", "chunk", "end")
    BEGIN_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    begin: InstanceBegin
    chunk: bytes
    end: InstanceEnd
    def __init__(self, begin: _Optional[_Union[InstanceBegin, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[InstanceEnd, _Mapping]] = ...) -> None: ...

class InstanceBegin(_message.Message):
    __slots__ = ("client_ref", "declared_size_bytes", "sha256")
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    DECLARED_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    client_ref: str
    declared_size_bytes: int
    sha256: str
    def __init__(self, client_ref: _Optional[str] = ..., declared_size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class InstanceEnd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("results", "stored_count", "duplicate_count", "rejected_count", "quarantined_count", "bytes_received")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STORED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_COUNT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[InstanceResult]
    stored_count: int
    duplicate_count: int
    rejected_count: int
    quarantined_count: int
    bytes_received: int
    def __init__(self, results: _Optional[_Iterable[_Union[InstanceResult, _Mapping]]] = ..., stored_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., quarantined_count: _Optional[int] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class InstanceResult(_message.Message):
    __slots__ = ("client_ref", "outcome", "reason", "message", "study_id", "series_id", "sop_instance_uid", "stored_sha256", "patient_id")
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    STORED_SHA256_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_ref: str
    outcome: InstanceOutcome
    reason: InstanceReason
    message: str
    study_id: str
    series_id: str
    sop_instance_uid: str
    stored_sha256: str
    patient_id: str
    def __init__(self, client_ref: _Optional[str] = ..., outcome: _Optional[_Union[InstanceOutcome, str]] = ..., reason: _Optional[_Union[InstanceReason, str]] = ..., message: _Optional[str] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ..., stored_sha256: _Optional[str] = ..., patient_id: _Optional[str] = ...) -> None: ...

class CompleteStudyRequest(_message.Message):
    __slots__ = ("study_id",)
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    def __init__(self, study_id: _Optional[str] = ...) -> None: ...

class CompleteStudyResponse(_message.Message):
    __slots__ = ("study", "job_created")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    JOB_CREATED_FIELD_NUMBER: _ClassVar[int]
    study: Study
    job_created: bool
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ..., job_created: _Optional[bool] = ...) -> None: ...

class GetStudyRequest(_message.Message):
    __slots__ = ("study_id",)
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    def __init__(self, study_id: _Optional[str] = ...) -> None: ...

class GetStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class ProcessingStatus(_message.Message):
    __slots__ = ("state", "job_id", "attempts", "last_error", "updated_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    state: ProcessingState
    job_id: str
    attempts: int
    last_error: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[ProcessingState, str]] = ..., job_id: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Study(_message.Message):
    __slots__ = ("study_id", "patient_id", "study_instance_uid", "state", "source", "shifted_study_date", "received_at", "completed_at", "instance_count", "series", "selection_outcome", "selected_series_id", "processing", "prediction_available", "series_count")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SHIFTED_STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SELECTION_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SELECTED_SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    SERIES_COUNT_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    patient_id: str
    study_instance_uid: str
    state: StudyState
    source: StudySource
    shifted_study_date: _common_pb2.Date
    received_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    instance_count: int
    series: _containers.RepeatedCompositeFieldContainer[Series]
    selection_outcome: SelectionOutcome
    selected_series_id: str
    processing: ProcessingStatus
    prediction_available: bool
    series_count: int
    def __init__(self, study_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., state: _Optional[_Union[StudyState, str]] = ..., source: _Optional[_Union[StudySource, str]] = ..., shifted_study_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., instance_count: _Optional[int] = ..., series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., selection_outcome: _Optional[_Union[SelectionOutcome, str]] = ..., selected_series_id: _Optional[str] = ..., processing: _Optional[_Union[ProcessingStatus, _Mapping]] = ..., prediction_available: _Optional[bool] = ..., series_count: _Optional[int] = ...) -> None: ...

class SeriesReason(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: SelectionReason
    message: str
    def __init__(self, code: _Optional[_Union[SelectionReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Series(_message.Message):
    __slots__ = ("series_id", "series_instance_uid", "series_number", "description", "modality", "instance_count", "frame_count", "plane", "weighting", "repetition_time_ms", "echo_time_ms", "slice_thickness_mm", "slice_spacing_mm", "rows", "columns", "pixel_spacing_mm", "transfer_syntax_uids", "decision", "reasons", "score", "content_sha256")
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTING_FIELD_NUMBER: _ClassVar[int]
    REPETITION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ECHO_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SLICE_THICKNESS_MM_FIELD_NUMBER: _ClassVar[int]
    SLICE_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SYNTAX_UIDS_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    series_id: str
    series_instance_uid: str
    series_number: int
    description: str
    modality: str
    instance_count: int
    frame_count: int
    plane: Plane
    weighting: Weighting
    repetition_time_ms: float
    echo_time_ms: float
    slice_thickness_mm: float
    slice_spacing_mm: float
    rows: int
    columns: int
    pixel_spacing_mm: _containers.RepeatedScalarFieldContainer[float]
    transfer_syntax_uids: _containers.RepeatedScalarFieldContainer[str]
    decision: SeriesDecision
    reasons: _containers.RepeatedCompositeFieldContainer[SeriesReason]
    score: float
    content_sha256: str
    def __init__(self, series_id: _Optional[str] = ..., series_instance_uid: _Optional[str] = ..., series_number: _Optional[int] = ..., description: _Optional[str] = ..., modality: _Optional[str] = ..., instance_count: _Optional[int] = ..., frame_count: _Optional[int] = ..., plane: _Optional[_Union[Plane, str]] = ..., weighting: _Optional[_Union[Weighting, str]] = ..., repetition_time_ms: _Optional[float] = ..., echo_time_ms: _Optional[float] = ..., slice_thickness_mm: _Optional[float] = ..., slice_spacing_mm: _Optional[float] = ..., rows: _Optional[int] = ..., columns: _Optional[int] = ..., pixel_spacing_mm: _Optional[_Iterable[float]] = ..., transfer_syntax_uids: _Optional[_Iterable[str]] = ..., decision: _Optional[_Union[SeriesDecision, str]] = ..., reasons: _Optional[_Iterable[_Union[SeriesReason, _Mapping]]] = ..., score: _Optional[float] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class ListStudiesRequest(_message.Message):
    __slots__ = ("page", "patient_id", "state", "selection_outcome", "processing_state", "received_after", "received_before")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SELECTION_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AFTER_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    patient_id: str
    state: StudyState
    selection_outcome: SelectionOutcome
    processing_state: ProcessingState
    received_after: _timestamp_pb2.Timestamp
    received_before: _timestamp_pb2.Timestamp
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., patient_id: _Optional[str] = ..., state: _Optional[_Union[StudyState, str]] = ..., selection_outcome: _Optional[_Union[SelectionOutcome, str]] = ..., processing_state: _Optional[_Union[ProcessingState, str]] = ..., received_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStudiesResponse(_message.Message):
    __slots__ = ("studies", "page")
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[Study]
    page: _common_pb2.PageResponse
    def __init__(self, studies: _Optional[_Iterable[_Union[Study, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class LookupIdsRequest(_message.Message):
    __slots__ = ("mrn", "accession_number", "study_instance_uid", "mrn_issuer", "create_patient_if_missing", "identity")
    MRN_FIELD_NUMBER: _ClassVar[int]
    ACCESSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    MRN_ISSUER_FIELD_NUMBER: _ClassVar[int]
    CREATE_PATIENT_IF_MISSING_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    mrn: str
    accession_number: str
    study_instance_uid: str
    mrn_issuer: str
    create_patient_if_missing: bool
    identity: PatientIdentity
    def __init__(self, mrn: _Optional[str] = ..., accession_number: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., mrn_issuer: _Optional[str] = ..., create_patient_if_missing: _Optional[bool] = ..., identity: _Optional[_Union[PatientIdentity, _Mapping]] = ...) -> None: ...

class LookupIdsResponse(_message.Message):
    __slots__ = ("patient_id", "study_ids", "created")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    study_ids: _containers.RepeatedScalarFieldContainer[str]
    created: bool
    def __init__(self, patient_id: _Optional[str] = ..., study_ids: _Optional[_Iterable[str]] = ..., created: _Optional[bool] = ...) -> None: ...

class ResolvePatientRequest(_message.Message):
    __slots__ = ("patient_id", "purpose")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    purpose: str
    def __init__(self, patient_id: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class ResolvePatientResponse(_message.Message):
    __slots__ = ("patient_id", "identity")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    identity: PatientIdentity
    def __init__(self, patient_id: _Optional[str] = ..., identity: _Optional[_Union[PatientIdentity, _Mapping]] = ...) -> None: ...

class PatientIdentity(_message.Message):
    __slots__ = ("mrn", "mrn_issuer", "family_name", "given_name", "birth_date", "sex", "phone")
    MRN_FIELD_NUMBER: _ClassVar[int]
    MRN_ISSUER_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAME_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    mrn: str
    mrn_issuer: str
    family_name: str
    given_name: str
    birth_date: _common_pb2.Date
    sex: _common_pb2.Sex
    phone: str
    def __init__(self, mrn: _Optional[str] = ..., mrn_issuer: _Optional[str] = ..., family_name: _Optional[str] = ..., given_name: _Optional[str] = ..., birth_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., sex: _Optional[_Union[_common_pb2.Sex, str]] = ..., phone: _Optional[str] = ...) -> None: ...

class ListQuarantineRequest(_message.Message):
    __slots__ = ("page", "study_id", "reason")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    study_id: str
    reason: InstanceReason
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., study_id: _Optional[str] = ..., reason: _Optional[_Union[InstanceReason, str]] = ...) -> None: ...

class QuarantinedInstance(_message.Message):
    __slots__ = ("study_id", "series_id", "sop_instance_uid", "reason", "message", "stored_sha256", "received_at")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STORED_SHA256_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    series_id: str
    sop_instance_uid: str
    reason: InstanceReason
    message: str
    stored_sha256: str
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ..., reason: _Optional[_Union[InstanceReason, str]] = ..., message: _Optional[str] = ..., stored_sha256: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListQuarantineResponse(_message.Message):
    __slots__ = ("instances", "page")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[QuarantinedInstance]
    page: _common_pb2.PageResponse
    def __init__(self, instances: _Optional[_Iterable[_Union[QuarantinedInstance, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetSeriesRequest(_message.Message):
    __slots__ = ("series_id",)
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    series_id: str
    def __init__(self, series_id: _Optional[str] = ...) -> None: ...

class SeriesObject(_message.Message):
    __slots__ = ("sop_instance_uid", "sha256", "size_bytes")
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sop_instance_uid: str
    sha256: str
    size_bytes: int
    def __init__(self, sop_instance_uid: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class GetSeriesResponse(_message.Message):
    __slots__ = ("study_id", "patient_id", "series", "objects")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    patient_id: str
    series: Series
    objects: _containers.RepeatedCompositeFieldContainer[SeriesObject]
    def __init__(self, study_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., series: _Optional[_Union[Series, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[SeriesObject, _Mapping]]] = ...) -> None: ...

class ReportJobStatusRequest(_message.Message):
    __slots__ = ("job_id", "state", "attempts", "last_error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: ProcessingState
    attempts: int
    last_error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[ProcessingState, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ReportJobStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ProcessingStatus
    def __init__(self, status: _Optional[_Union[ProcessingStatus, _Mapping]] = ...) -> None: ...
