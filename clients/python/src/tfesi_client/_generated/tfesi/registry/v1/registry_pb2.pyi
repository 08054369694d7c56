import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tfesi_client._generated.tfesi.common.v1 import common_pb2 as _common_pb2
from tfesi_client._generated.tfesi.registry.v1 import dataset_pb2 as _dataset_pb2
from tfesi_client._generated.tfesi.registry.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateEpisodeRequest(_message.Message):
    __slots__ = ("idempotency_key", "details")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    details: _records_pb2.EpisodeDetails
    def __init__(self, idempotency_key: _Optional[str] = ..., details: _Optional[_Union[_records_pb2.EpisodeDetails, _Mapping]] = ...) -> None: ...

class CreateEpisodeResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: _records_pb2.Episode
    def __init__(self, episode: _Optional[_Union[_records_pb2.Episode, _Mapping]] = ...) -> None: ...

class LinkStudyRequest(_message.Message):
    __slots__ = ("episode_id", "study_id")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    study_id: str
    def __init__(self, episode_id: _Optional[str] = ..., study_id: _Optional[str] = ...) -> None: ...

class LinkStudyResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: _records_pb2.Episode
    def __init__(self, episode: _Optional[_Union[_records_pb2.Episode, _Mapping]] = ...) -> None: ...

class RecordInjectionRequest(_message.Message):
    __slots__ = ("idempotency_key", "episode_id", "injection")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    INJECTION_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    episode_id: str
    injection: _records_pb2.InjectionDetails
    def __init__(self, idempotency_key: _Optional[str] = ..., episode_id: _Optional[str] = ..., injection: _Optional[_Union[_records_pb2.InjectionDetails, _Mapping]] = ...) -> None: ...

class RecordInjectionResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: _records_pb2.Episode
    def __init__(self, episode: _Optional[_Union[_records_pb2.Episode, _Mapping]] = ...) -> None: ...

class GetEpisodeRequest(_message.Message):
    __slots__ = ("episode_id",)
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    def __init__(self, episode_id: _Optional[str] = ...) -> None: ...

class GetEpisodeResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: _records_pb2.Episode
    def __init__(self, episode: _Optional[_Union[_records_pb2.Episode, _Mapping]] = ...) -> None: ...

class ListEpisodesRequest(_message.Message):
    __slots__ = ("page", "patient_id", "study_id", "status", "indication", "created_after", "created_before")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INDICATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    patient_id: str
    study_id: str
    status: _records_pb2.OutcomeStatus
    indication: _common_pb2.Indication
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., patient_id: _Optional[str] = ..., study_id: _Optional[str] = ..., status: _Optional[_Union[_records_pb2.OutcomeStatus, str]] = ..., indication: _Optional[_Union[_common_pb2.Indication, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEpisodesResponse(_message.Message):
    __slots__ = ("episodes", "page")
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    episodes: _containers.RepeatedCompositeFieldContainer[_records_pb2.Episode]
    page: _common_pb2.PageResponse
    def __init__(self, episodes: _Optional[_Iterable[_Union[_records_pb2.Episode, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RecordPredictionRequest(_message.Message):
    __slots__ = ("job_id", "study_id", "series_id", "predictions", "series_content_sha256", "instance_sha256")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    SERIES_CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    study_id: str
    series_id: str
    predictions: _containers.RepeatedCompositeFieldContainer[_records_pb2.PredictionRecord]
    series_content_sha256: str
    instance_sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[_records_pb2.PredictionRecord, _Mapping]]] = ..., series_content_sha256: _Optional[str] = ..., instance_sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordPredictionResponse(_message.Message):
    __slots__ = ("prediction_ids", "episode_ids", "already_recorded")
    PREDICTION_IDS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_IDS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RECORDED_FIELD_NUMBER: _ClassVar[int]
    prediction_ids: _containers.RepeatedScalarFieldContainer[str]
    episode_ids: _containers.RepeatedScalarFieldContainer[str]
    already_recorded: bool
    def __init__(self, prediction_ids: _Optional[_Iterable[str]] = ..., episode_ids: _Optional[_Iterable[str]] = ..., already_recorded: _Optional[bool] = ...) -> None: ...

class WatchEpisodeRequest(_message.Message):
    __slots__ = ("episode_id", "send_initial", "after_revision")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    SEND_INITIAL_FIELD_NUMBER: _ClassVar[int]
    AFTER_REVISION_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    send_initial: bool
    after_revision: int
    def __init__(self, episode_id: _Optional[str] = ..., send_initial: _Optional[bool] = ..., after_revision: _Optional[int] = ...) -> None: ...

class EpisodeEvent(_message.Message):
    __slots__ = ("episode_id", "revision", "occurred_at", "snapshot", "prediction_recorded", "injection_recorded", "follow_up_recorded", "follow_up_amended", "status_changed", "label_changed")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_RECORDED_FIELD_NUMBER: _ClassVar[int]
    INJECTION_RECORDED_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_RECORDED_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_AMENDED_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    LABEL_CHANGED_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    revision: int
    occurred_at: _timestamp_pb2.Timestamp
    snapshot: _records_pb2.Episode
    prediction_recorded: _records_pb2.PredictionRecord
    injection_recorded: _records_pb2.Injection
    follow_up_recorded: _records_pb2.FollowUp
    follow_up_amended: _records_pb2.FollowUp
    status_changed: _records_pb2.OutcomeStatusInfo
    label_changed: _records_pb2.Label
    def __init__(self, episode_id: _Optional[str] = ..., revision: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot: _Optional[_Union[_records_pb2.Episode, _Mapping]] = ..., prediction_recorded: _Optional[_Union[_records_pb2.PredictionRecord, _Mapping]] = ..., injection_recorded: _Optional[_Union[_records_pb2.Injection, _Mapping]] = ..., follow_up_recorded: _Optional[_Union[_records_pb2.FollowUp, _Mapping]] = ..., follow_up_amended: _Optional[_Union[_records_pb2.FollowUp, _Mapping]] = ..., status_changed: _Optional[_Union[_records_pb2.OutcomeStatusInfo, _Mapping]] = ..., label_changed: _Optional[_Union[_records_pb2.Label, _Mapping]] = ...) -> None: ...

class ListDueFollowUpsRequest(_message.Message):
    __slots__ = ("as_of", "states", "page")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    as_of: _common_pb2.Date
    states: _containers.RepeatedScalarFieldContainer[_records_pb2.DueState]
    page: _common_pb2.PageRequest
    def __init__(self, as_of: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., states: _Optional[_Iterable[_Union[_records_pb2.DueState, str]]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListDueFollowUpsResponse(_message.Message):
    __slots__ = ("entries", "page")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_records_pb2.DueFollowUp]
    page: _common_pb2.PageResponse
    def __init__(self, entries: _Optional[_Iterable[_Union[_records_pb2.DueFollowUp, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RecordFollowUpRequest(_message.Message):
    __slots__ = ("idempotency_key", "episode_id", "follow_up")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    episode_id: str
    follow_up: _records_pb2.FollowUpInput
    def __init__(self, idempotency_key: _Optional[str] = ..., episode_id: _Optional[str] = ..., follow_up: _Optional[_Union[_records_pb2.FollowUpInput, _Mapping]] = ...) -> None: ...

class RecordFollowUpResponse(_message.Message):
    __slots__ = ("follow_up", "labels")
    FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    follow_up: _records_pb2.FollowUp
    labels: _containers.RepeatedCompositeFieldContainer[_records_pb2.Label]
    def __init__(self, follow_up: _Optional[_Union[_records_pb2.FollowUp, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[_records_pb2.Label, _Mapping]]] = ...) -> None: ...

class AmendFollowUpRequest(_message.Message):
    __slots__ = ("idempotency_key", "episode_id", "expected_version", "reason", "follow_up")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    episode_id: str
    expected_version: int
    reason: str
    follow_up: _records_pb2.FollowUpInput
    def __init__(self, idempotency_key: _Optional[str] = ..., episode_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ..., follow_up: _Optional[_Union[_records_pb2.FollowUpInput, _Mapping]] = ...) -> None: ...

class AmendFollowUpResponse(_message.Message):
    __slots__ = ("follow_up", "labels")
    FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    follow_up: _records_pb2.FollowUp
    labels: _containers.RepeatedCompositeFieldContainer[_records_pb2.Label]
    def __init__(self, follow_up: _Optional[_Union[_records_pb2.FollowUp, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[_records_pb2.Label, _Mapping]]] = ...) -> None: ...

class GetFollowUpHistoryRequest(_message.Message):
    __slots__ = ("episode_id",)
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    def __init__(self, episode_id: _Optional[str] = ...) -> None: ...

class GetFollowUpHistoryResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_records_pb2.FollowUp]
    def __init__(self, versions: _Optional[_Iterable[_Union[_records_pb2.FollowUp, _Mapping]]] = ...) -> None: ...

class SetOutcomeStatusRequest(_message.Message):
    __slots__ = ("episode_id", "status", "exclusion_reason", "note")
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXCLUSION_REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    episode_id: str
    status: _records_pb2.OutcomeStatus
    exclusion_reason: _records_pb2.ExclusionReason
    note: str
    def __init__(self, episode_id: _Optional[str] = ..., status: _Optional[_Union[_records_pb2.OutcomeStatus, str]] = ..., exclusion_reason: _Optional[_Union[_records_pb2.ExclusionReason, str]] = ..., note: _Optional[str] = ...) -> None: ...

class SetOutcomeStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _records_pb2.OutcomeStatusInfo
    def __init__(self, status: _Optional[_Union[_records_pb2.OutcomeStatusInfo, _Mapping]] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("as_of", "filter", "label_rule_version", "split_seed", "fractions", "description")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LABEL_RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SEED_FIELD_NUMBER: _ClassVar[int]
    FRACTIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    as_of: _timestamp_pb2.Timestamp
    filter: _dataset_pb2.SnapshotFilter
    label_rule_version: str
    split_seed: int
    fractions: _dataset_pb2.SplitFractions
    description: str
    def __init__(self, as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filter: _Optional[_Union[_dataset_pb2.SnapshotFilter, _Mapping]] = ..., label_rule_version: _Optional[str] = ..., split_seed: _Optional[int] = ..., fractions: _Optional[_Union[_dataset_pb2.SplitFractions, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateSnapshotResponse(_message.Message):
    __slots__ = ("snapshot", "created")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    snapshot: _dataset_pb2.Snapshot
    created: bool
    def __init__(self, snapshot: _Optional[_Union[_dataset_pb2.Snapshot, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetSnapshotRequest(_message.Message):
    __slots__ = ("snapshot_id",)
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    def __init__(self, snapshot_id: _Optional[str] = ...) -> None: ...

class GetSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: _dataset_pb2.Snapshot
    def __init__(self, snapshot: _Optional[_Union[_dataset_pb2.Snapshot, _Mapping]] = ...) -> None: ...

class ExportSnapshotRequest(_message.Message):
    __slots__ = ("snapshot_id", "split")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    split: _dataset_pb2.Split
    def __init__(self, snapshot_id: _Optional[str] = ..., split: _Optional[_Union[_dataset_pb2.Split, str]] = ...) -> None: ...

class ExportSnapshotResponse(_message.Message):
    __slots__ = ("snapshot", "row")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    snapshot: _dataset_pb2.Snapshot
    row: _dataset_pb2.SnapshotRow
    def __init__(self, snapshot: _Optional[_Union[_dataset_pb2.Snapshot, _Mapping]] = ..., row: _Optional[_Union[_dataset_pb2.SnapshotRow, _Mapping]] = ...) -> None: ...

class GetModelPerformanceRequest(_message.Message):
    __slots__ = ("model", "as_of", "label_rule_version", "compare_with")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LABEL_RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPARE_WITH_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    as_of: _timestamp_pb2.Timestamp
    label_rule_version: str
    compare_with: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., label_rule_version: _Optional[str] = ..., compare_with: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class GetModelPerformanceResponse(_message.Message):
    __slots__ = ("model", "as_of", "label_rule_version", "metrics", "comparison")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LABEL_RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    as_of: _timestamp_pb2.Timestamp
    label_rule_version: str
    metrics: _dataset_pb2.MetricSet
    comparison: _dataset_pb2.PairedComparison
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., label_rule_version: _Optional[str] = ..., metrics: _Optional[_Union[_dataset_pb2.MetricSet, _Mapping]] = ..., comparison: _Optional[_Union[_dataset_pb2.PairedComparison, _Mapping]] = ...) -> None: ...

class WatchLabelsRequest(_message.Message):
    __slots__ = ("rule_versions", "min_interval_ms")
    RULE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    rule_versions: _containers.RepeatedScalarFieldContainer[str]
    min_interval_ms: int
    def __init__(self, rule_versions: _Optional[_Iterable[str]] = ..., min_interval_ms: _Optional[int] = ...) -> None: ...

class WatchLabelsResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[_records_pb2.LabelCounts]
    def __init__(self, counts: _Optional[_Iterable[_Union[_records_pb2.LabelCounts, _Mapping]]] = ...) -> None: ...

class ListLabelRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLabelRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[_records_pb2.LabelRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[_records_pb2.LabelRule, _Mapping]]] = ...) -> None: ...
