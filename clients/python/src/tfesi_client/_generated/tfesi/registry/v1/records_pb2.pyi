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

class Approach(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROACH_UNSPECIFIED: _ClassVar[Approach]
    APPROACH_SUBPEDICULAR: _ClassVar[Approach]
    APPROACH_RETRODISCAL: _ClassVar[Approach]

class Guidance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUIDANCE_UNSPECIFIED: _ClassVar[Guidance]
    GUIDANCE_FLUOROSCOPY: _ClassVar[Guidance]
    GUIDANCE_CT: _ClassVar[Guidance]

class OutcomeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_STATUS_UNSPECIFIED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_PENDING: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_COMPLETED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_LOST_TO_FOLLOW_UP: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_WITHDRAWN: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_EXCLUDED: _ClassVar[OutcomeStatus]

class ExclusionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXCLUSION_REASON_UNSPECIFIED: _ClassVar[ExclusionReason]
    EXCLUSION_REASON_REPEAT_INJECTION: _ClassVar[ExclusionReason]
    EXCLUSION_REASON_SURGERY: _ClassVar[ExclusionReason]
    EXCLUSION_REASON_BASELINE_TOO_LOW: _ClassVar[ExclusionReason]
    EXCLUSION_REASON_OUT_OF_WINDOW: _ClassVar[ExclusionReason]
    EXCLUSION_REASON_DECEASED: _ClassVar[ExclusionReason]
    EXCLUSION_REASON_OTHER: _ClassVar[ExclusionReason]

class FollowUpMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FOLLOW_UP_METHOD_UNSPECIFIED: _ClassVar[FollowUpMethod]
    FOLLOW_UP_METHOD_CLINIC: _ClassVar[FollowUpMethod]
    FOLLOW_UP_METHOD_PHONE: _ClassVar[FollowUpMethod]
    FOLLOW_UP_METHOD_MESSAGE: _ClassVar[FollowUpMethod]

class AnalgesicChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANALGESIC_CHANGE_UNSPECIFIED: _ClassVar[AnalgesicChange]
    ANALGESIC_CHANGE_NONE: _ClassVar[AnalgesicChange]
    ANALGESIC_CHANGE_DECREASED: _ClassVar[AnalgesicChange]
    ANALGESIC_CHANGE_UNCHANGED: _ClassVar[AnalgesicChange]
    ANALGESIC_CHANGE_INCREASED: _ClassVar[AnalgesicChange]
    ANALGESIC_CHANGE_STOPPED: _ClassVar[AnalgesicChange]

class AdverseEvent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADVERSE_EVENT_UNSPECIFIED: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_INCREASED_PAIN: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_HEADACHE: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_STEROID_EFFECT: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_VASOVAGAL: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_TRANSIENT_NEUROLOGICAL: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_PERSISTENT_NEUROLOGICAL: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_INFECTION: _ClassVar[AdverseEvent]
    ADVERSE_EVENT_OTHER: _ClassVar[AdverseEvent]

class DueState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DUE_STATE_UNSPECIFIED: _ClassVar[DueState]
    DUE_STATE_UPCOMING: _ClassVar[DueState]
    DUE_STATE_IN_WINDOW: _ClassVar[DueState]
    DUE_STATE_DUE_TODAY: _ClassVar[DueState]
    DUE_STATE_OVERDUE: _ClassVar[DueState]

class LabelScore(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_SCORE_UNSPECIFIED: _ClassVar[LabelScore]
    LABEL_SCORE_LEG: _ClassVar[LabelScore]
    LABEL_SCORE_BACK: _ClassVar[LabelScore]

class UnlabelableReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNLABELABLE_REASON_UNSPECIFIED: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_NO_FOLLOW_UP: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_BASELINE_ZERO: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_BASELINE_BELOW_MINIMUM: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_OUT_OF_WINDOW: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_REPEAT_INJECTION: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_SURGERY: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_STATUS: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_NO_INJECTION: _ClassVar[UnlabelableReason]
    UNLABELABLE_REASON_SCORE_MISSING: _ClassVar[UnlabelableReason]
APPROACH_UNSPECIFIED: Approach
APPROACH_SUBPEDICULAR: Approach
APPROACH_RETRODISCAL: Approach
GUIDANCE_UNSPECIFIED: Guidance
GUIDANCE_FLUOROSCOPY: Guidance
GUIDANCE_CT: Guidance
OUTCOME_STATUS_UNSPECIFIED: OutcomeStatus
OUTCOME_STATUS_PENDING: OutcomeStatus
OUTCOME_STATUS_COMPLETED: OutcomeStatus
OUTCOME_STATUS_LOST_TO_FOLLOW_UP: OutcomeStatus
OUTCOME_STATUS_WITHDRAWN: OutcomeStatus
OUTCOME_STATUS_EXCLUDED: OutcomeStatus
EXCLUSION_REASON_UNSPECIFIED: ExclusionReason
EXCLUSION_REASON_REPEAT_INJECTION: ExclusionReason
EXCLUSION_REASON_SURGERY: ExclusionReason
EXCLUSION_REASON_BASELINE_TOO_LOW: ExclusionReason
EXCLUSION_REASON_OUT_OF_WINDOW: ExclusionReason
EXCLUSION_REASON_DECEASED: ExclusionReason
EXCLUSION_REASON_OTHER: ExclusionReason
FOLLOW_UP_METHOD_UNSPECIFIED: FollowUpMethod
FOLLOW_UP_METHOD_CLINIC: FollowUpMethod
FOLLOW_UP_METHOD_PHONE: FollowUpMethod
FOLLOW_UP_METHOD_MESSAGE: FollowUpMethod
ANALGESIC_CHANGE_UNSPECIFIED: AnalgesicChange
ANALGESIC_CHANGE_NONE: AnalgesicChange
ANALGESIC_CHANGE_DECREASED: AnalgesicChange
ANALGESIC_CHANGE_UNCHANGED: AnalgesicChange
ANALGESIC_CHANGE_INCREASED: AnalgesicChange
ANALGESIC_CHANGE_STOPPED: AnalgesicChange
ADVERSE_EVENT_UNSPECIFIED: AdverseEvent
ADVERSE_EVENT_INCREASED_PAIN: AdverseEvent
ADVERSE_EVENT_HEADACHE: AdverseEvent
ADVERSE_EVENT_STEROID_EFFECT: AdverseEvent
ADVERSE_EVENT_VASOVAGAL: AdverseEvent
ADVERSE_EVENT_TRANSIENT_NEUROLOGICAL: AdverseEvent
ADVERSE_EVENT_PERSISTENT_NEUROLOGICAL: AdverseEvent
ADVERSE_EVENT_INFECTION: AdverseEvent
ADVERSE_EVENT_OTHER: AdverseEvent
DUE_STATE_UNSPECIFIED: DueState
DUE_STATE_UPCOMING: DueState
DUE_STATE_IN_WINDOW: DueState
DUE_STATE_DUE_TODAY: DueState
DUE_STATE_OVERDUE: DueState
LABEL_SCORE_UNSPECIFIED: LabelScore
LABEL_SCORE_LEG: LabelScore
LABEL_SCORE_BACK: LabelScore
UNLABELABLE_REASON_UNSPECIFIED: UnlabelableReason
UNLABELABLE_REASON_NO_FOLLOW_UP: UnlabelableReason
UNLABELABLE_REASON_BASELINE_ZERO: UnlabelableReason
UNLABELABLE_REASON_BASELINE_BELOW_MINIMUM: UnlabelableReason
UNLABELABLE_REASON_OUT_OF_WINDOW: UnlabelableReason
UNLABELABLE_REASON_REPEAT_INJECTION: UnlabelableReason
UNLABELABLE_REASON_SURGERY: UnlabelableReason
UNLABELABLE_REASON_STATUS: UnlabelableReason
UNLABELABLE_REASON_NO_INJECTION: UnlabelableReason
UNLABELABLE_REASON_SCORE_MISSING: UnlabelableReason

class EpisodeDetails(_message.Message):
    __slots__ = ("patient_id", "study_id", "indication", "planned_levels", "planned_side", "baseline_leg_nrs", "baseline_back_nrs", "symptom_duration_days", "age_years", "sex", "baseline_date")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    INDICATION_FIELD_NUMBER: _ClassVar[int]
    PLANNED_LEVELS_FIELD_NUMBER: _ClassVar[int]
    PLANNED_SIDE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_LEG_NRS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_BACK_NRS_FIELD_NUMBER: _ClassVar[int]
    SYMPTOM_DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    AGE_YEARS_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    BASELINE_DATE_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    study_id: str
    indication: _common_pb2.Indication
    planned_levels: _containers.RepeatedScalarFieldContainer[_common_pb2.SpinalLevel]
    planned_side: _common_pb2.Side
    baseline_leg_nrs: int
    baseline_back_nrs: int
    symptom_duration_days: int
    age_years: int
    sex: _common_pb2.Sex
    baseline_date: _common_pb2.Date
    def __init__(self, patient_id: _Optional[str] = ..., study_id: _Optional[str] = ..., indication: _Optional[_Union[_common_pb2.Indication, str]] = ..., planned_levels: _Optional[_Iterable[_Union[_common_pb2.SpinalLevel, str]]] = ..., planned_side: _Optional[_Union[_common_pb2.Side, str]] = ..., baseline_leg_nrs: _Optional[int] = ..., baseline_back_nrs: _Optional[int] = ..., symptom_duration_days: _Optional[int] = ..., age_years: _Optional[int] = ..., sex: _Optional[_Union[_common_pb2.Sex, str]] = ..., baseline_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ...) -> None: ...

class InjectionDetails(_message.Message):
    __slots__ = ("injection_date", "levels", "side", "approach", "guidance", "contrast_used", "drug_code", "drug_text", "dose_mg", "local_anaesthetic")
    INJECTION_DATE_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    APPROACH_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_USED_FIELD_NUMBER: _ClassVar[int]
    DRUG_CODE_FIELD_NUMBER: _ClassVar[int]
    DRUG_TEXT_FIELD_NUMBER: _ClassVar[int]
    DOSE_MG_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ANAESTHETIC_FIELD_NUMBER: _ClassVar[int]
    injection_date: _common_pb2.Date
    levels: _containers.RepeatedScalarFieldContainer[_common_pb2.SpinalLevel]
    side: _common_pb2.Side
    approach: Approach
    guidance: Guidance
    contrast_used: bool
    drug_code: str
    drug_text: str
    dose_mg: float
    local_anaesthetic: str
    def __init__(self, injection_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., levels: _Optional[_Iterable[_Union[_common_pb2.SpinalLevel, str]]] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., approach: _Optional[_Union[Approach, str]] = ..., guidance: _Optional[_Union[Guidance, str]] = ..., contrast_used: _Optional[bool] = ..., drug_code: _Optional[str] = ..., drug_text: _Optional[str] = ..., dose_mg: _Optional[float] = ..., local_anaesthetic: _Optional[str] = ...) -> None: ...

class Injection(_message.Message):
    __slots__ = ("injection_id", "details", "recorded_at")
    INJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    injection_id: str
    details: InjectionDetails
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, injection_id: _Optional[str] = ..., details: _Optional[_Union[InjectionDetails, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OutcomeStatusInfo(_message.Message):
    __slots__ = ("status", "exclusion_reason", "note", "changed_at", "changed_by")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXCLUSION_REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    status: OutcomeStatus
    exclusion_reason: ExclusionReason
    note: str
    changed_at: _timestamp_pb2.Timestamp
    changed_by: str
    def __init__(self, status: _Optional[_Union[OutcomeStatus, str]] = ..., exclusion_reason: _Optional[_Union[ExclusionReason, str]] = ..., note: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed_by: _Optional[str] = ...) -> None: ...

class Episode(_message.Message):
    __slots__ = ("episode_id", "details", "injection", "status", "predictions", "follow_up", "labels", "window", "created_at", "revision")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    INJECTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    details: EpisodeDetails
    injection: Injection
    status: OutcomeStatusInfo
    predictions: _containers.RepeatedCompositeFieldContainer[PredictionRecord]
    follow_up: FollowUp
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    window: FollowUpWindow
    created_at: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, episode_id: _Optional[str] = ..., details: _Optional[_Union[EpisodeDetails, _Mapping]] = ..., injection: _Optional[_Union[Injection, _Mapping]] = ..., status: _Optional[_Union[OutcomeStatusInfo, _Mapping]] = ..., predictions: _Optional[_Iterable[_Union[PredictionRecord, _Mapping]]] = ..., follow_up: _Optional[_Union[FollowUp, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., window: _Optional[_Union[FollowUpWindow, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class PredictionRecord(_message.Message):
    __slots__ = ("prediction_id", "job_id", "study_id", "series_id", "model", "role", "spec_version", "probability", "threshold", "predicted_label", "execution_provider", "predicted_at", "tensor_sha256", "clinical")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_AT_FIELD_NUMBER: _ClassVar[int]
    TENSOR_SHA256_FIELD_NUMBER: _ClassVar[int]
    CLINICAL_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    job_id: str
    study_id: str
    series_id: str
    model: _common_pb2.ModelRef
    role: _common_pb2.ModelRole
    spec_version: str
    probability: float
    threshold: float
    predicted_label: _common_pb2.OutcomeLabel
    execution_provider: _common_pb2.ExecutionProvider
    predicted_at: _timestamp_pb2.Timestamp
    tensor_sha256: str
    clinical: _containers.RepeatedCompositeFieldContainer[_common_pb2.ClinicalFeature]
    def __init__(self, prediction_id: _Optional[str] = ..., job_id: _Optional[str] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., role: _Optional[_Union[_common_pb2.ModelRole, str]] = ..., spec_version: _Optional[str] = ..., probability: _Optional[float] = ..., threshold: _Optional[float] = ..., predicted_label: _Optional[_Union[_common_pb2.OutcomeLabel, str]] = ..., execution_provider: _Optional[_Union[_common_pb2.ExecutionProvider, str]] = ..., predicted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tensor_sha256: _Optional[str] = ..., clinical: _Optional[_Iterable[_Union[_common_pb2.ClinicalFeature, _Mapping]]] = ...) -> None: ...

class FollowUpInput(_message.Message):
    __slots__ = ("follow_up_date", "leg_nrs", "back_nrs", "pgic", "analgesic_change", "repeat_injection", "surgery", "adverse_events", "adverse_event_note", "method", "entered_by", "out_of_window")
    FOLLOW_UP_DATE_FIELD_NUMBER: _ClassVar[int]
    LEG_NRS_FIELD_NUMBER: _ClassVar[int]
    BACK_NRS_FIELD_NUMBER: _ClassVar[int]
    PGIC_FIELD_NUMBER: _ClassVar[int]
    ANALGESIC_CHANGE_FIELD_NUMBER: _ClassVar[int]
    REPEAT_INJECTION_FIELD_NUMBER: _ClassVar[int]
    SURGERY_FIELD_NUMBER: _ClassVar[int]
    ADVERSE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ADVERSE_EVENT_NOTE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ENTERED_BY_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_WINDOW_FIELD_NUMBER: _ClassVar[int]
    follow_up_date: _common_pb2.Date
    leg_nrs: int
    back_nrs: int
    pgic: int
    analgesic_change: AnalgesicChange
    repeat_injection: bool
    surgery: bool
    adverse_events: _containers.RepeatedScalarFieldContainer[AdverseEvent]
    adverse_event_note: str
    method: FollowUpMethod
    entered_by: str
    out_of_window: bool
    def __init__(self, follow_up_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., leg_nrs: _Optional[int] = ..., back_nrs: _Optional[int] = ..., pgic: _Optional[int] = ..., analgesic_change: _Optional[_Union[AnalgesicChange, str]] = ..., repeat_injection: _Optional[bool] = ..., surgery: _Optional[bool] = ..., adverse_events: _Optional[_Iterable[_Union[AdverseEvent, str]]] = ..., adverse_event_note: _Optional[str] = ..., method: _Optional[_Union[FollowUpMethod, str]] = ..., entered_by: _Optional[str] = ..., out_of_window: _Optional[bool] = ...) -> None: ...

class FollowUp(_message.Message):
    __slots__ = ("follow_up_id", "episode_id", "version", "current", "input", "days_since_injection", "in_window", "amendment_reason", "recorded_at", "recorded_by")
    FOLLOW_UP_ID_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    DAYS_SINCE_INJECTION_FIELD_NUMBER: _ClassVar[int]
    IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    AMENDMENT_REASON_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    follow_up_id: str
    episode_id: str
    version: int
    current: bool
    input: FollowUpInput
    days_since_injection: int
    in_window: bool
    amendment_reason: str
    recorded_at: _timestamp_pb2.Timestamp
    recorded_by: str
    def __init__(self, follow_up_id: _Optional[str] = ..., episode_id: _Optional[str] = ..., version: _Optional[int] = ..., current: _Optional[bool] = ..., input: _Optional[_Union[FollowUpInput, _Mapping]] = ..., days_since_injection: _Optional[int] = ..., in_window: _Optional[bool] = ..., amendment_reason: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_by: _Optional[str] = ...) -> None: ...

class FollowUpWindow(_message.Message):
    __slots__ = ("injection_date", "due_date", "window_start", "window_end")
    INJECTION_DATE_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    injection_date: _common_pb2.Date
    due_date: _common_pb2.Date
    window_start: _common_pb2.Date
    window_end: _common_pb2.Date
    def __init__(self, injection_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., due_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., window_start: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., window_end: _Optional[_Union[_common_pb2.Date, _Mapping]] = ...) -> None: ...

class DueFollowUp(_message.Message):
    __slots__ = ("episode_id", "patient_id", "window", "state", "days_since_injection", "levels", "side")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DAYS_SINCE_INJECTION_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    patient_id: str
    window: FollowUpWindow
    state: DueState
    days_since_injection: int
    levels: _containers.RepeatedScalarFieldContainer[_common_pb2.SpinalLevel]
    side: _common_pb2.Side
    def __init__(self, episode_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., window: _Optional[_Union[FollowUpWindow, _Mapping]] = ..., state: _Optional[_Union[DueState, str]] = ..., days_since_injection: _Optional[int] = ..., levels: _Optional[_Iterable[_Union[_common_pb2.SpinalLevel, str]]] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ...) -> None: ...

class LabelRule(_message.Message):
    __slots__ = ("version", "description", "score", "min_baseline", "min_reduction", "window_start_day", "due_day", "window_end_day", "include_out_of_window", "exclude_confounded", "is_default")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MIN_BASELINE_FIELD_NUMBER: _ClassVar[int]
    MIN_REDUCTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_DAY_FIELD_NUMBER: _ClassVar[int]
    DUE_DAY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_DAY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OUT_OF_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CONFOUNDED_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    version: str
    description: str
    score: LabelScore
    min_baseline: int
    min_reduction: float
    window_start_day: int
    due_day: int
    window_end_day: int
    include_out_of_window: bool
    exclude_confounded: bool
    is_default: bool
    def __init__(self, version: _Optional[str] = ..., description: _Optional[str] = ..., score: _Optional[_Union[LabelScore, str]] = ..., min_baseline: _Optional[int] = ..., min_reduction: _Optional[float] = ..., window_start_day: _Optional[int] = ..., due_day: _Optional[int] = ..., window_end_day: _Optional[int] = ..., include_out_of_window: _Optional[bool] = ..., exclude_confounded: _Optional[bool] = ..., is_default: _Optional[bool] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("rule_version", "label", "unlabelable_reason", "reduction", "follow_up_version", "computed_at")
    RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    UNLABELABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    REDUCTION_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    rule_version: str
    label: _common_pb2.OutcomeLabel
    unlabelable_reason: UnlabelableReason
    reduction: float
    follow_up_version: int
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, rule_version: _Optional[str] = ..., label: _Optional[_Union[_common_pb2.OutcomeLabel, str]] = ..., unlabelable_reason: _Optional[_Union[UnlabelableReason, str]] = ..., reduction: _Optional[float] = ..., follow_up_version: _Optional[int] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LabelCounts(_message.Message):
    __slots__ = ("rule_version", "good", "poor", "labeled", "unlabelable", "pending", "as_of")
    RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    GOOD_FIELD_NUMBER: _ClassVar[int]
    POOR_FIELD_NUMBER: _ClassVar[int]
    LABELED_FIELD_NUMBER: _ClassVar[int]
    UNLABELABLE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    rule_version: str
    good: int
    poor: int
    labeled: int
    unlabelable: int
    pending: int
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, rule_version: _Optional[str] = ..., good: _Optional[int] = ..., poor: _Optional[int] = ..., labeled: _Optional[int] = ..., unlabelable: _Optional[int] = ..., pending: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
