import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tfesi_client._generated.tfesi.common.v1 import common_pb2 as _common_pb2
from tfesi_client._generated.tfesi.registry.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Split(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_UNSPECIFIED: _ClassVar[Split]
    SPLIT_TRAIN: _ClassVar[Split]
    SPLIT_VALIDATION: _ClassVar[Split]
    SPLIT_TEST: _ClassVar[Split]
SPLIT_UNSPECIFIED: Split
SPLIT_TRAIN: Split
SPLIT_VALIDATION: Split
SPLIT_TEST: Split

class SnapshotFilter(_message.Message):
    __slots__ = ("indications", "levels", "injected_from", "injected_to", "require_study", "include_unlabeled")
    INDICATIONS_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FROM_FIELD_NUMBER: _ClassVar[int]
    INJECTED_TO_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_STUDY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNLABELED_FIELD_NUMBER: _ClassVar[int]
    indications: _containers.RepeatedScalarFieldContainer[_common_pb2.Indication]
    levels: _containers.RepeatedScalarFieldContainer[_common_pb2.SpinalLevel]
    injected_from: _common_pb2.Date
    injected_to: _common_pb2.Date
    require_study: bool
    include_unlabeled: bool
    def __init__(self, indications: _Optional[_Iterable[_Union[_common_pb2.Indication, str]]] = ..., levels: _Optional[_Iterable[_Union[_common_pb2.SpinalLevel, str]]] = ..., injected_from: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., injected_to: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., require_study: _Optional[bool] = ..., include_unlabeled: _Optional[bool] = ...) -> None: ...

class SplitFractions(_message.Message):
    __slots__ = ("train", "validation", "test")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    train: float
    validation: float
    test: float
    def __init__(self, train: _Optional[float] = ..., validation: _Optional[float] = ..., test: _Optional[float] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("snapshot_id", "as_of", "filter", "label_rule_version", "split_seed", "fractions", "row_count", "patient_count", "train_count", "validation_count", "test_count", "good_count", "poor_count", "manifest_version", "created_at", "description")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LABEL_RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SEED_FIELD_NUMBER: _ClassVar[int]
    FRACTIONS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    PATIENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    GOOD_COUNT_FIELD_NUMBER: _ClassVar[int]
    POOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    as_of: _timestamp_pb2.Timestamp
    filter: SnapshotFilter
    label_rule_version: str
    split_seed: int
    fractions: SplitFractions
    row_count: int
    patient_count: int
    train_count: int
    validation_count: int
    test_count: int
    good_count: int
    poor_count: int
    manifest_version: int
    created_at: _timestamp_pb2.Timestamp
    description: str
    def __init__(self, snapshot_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filter: _Optional[_Union[SnapshotFilter, _Mapping]] = ..., label_rule_version: _Optional[str] = ..., split_seed: _Optional[int] = ..., fractions: _Optional[_Union[SplitFractions, _Mapping]] = ..., row_count: _Optional[int] = ..., patient_count: _Optional[int] = ..., train_count: _Optional[int] = ..., validation_count: _Optional[int] = ..., test_count: _Optional[int] = ..., good_count: _Optional[int] = ..., poor_count: _Optional[int] = ..., manifest_version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class SnapshotRow(_message.Message):
    __slots__ = ("index", "episode_id", "patient_id", "split", "study_id", "series_id", "series_content_sha256", "instance_sha256", "details", "injected_levels", "injected_side", "follow_up_leg_nrs", "follow_up_back_nrs", "days_to_follow_up", "label", "champion_prediction")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    INJECTED_LEVELS_FIELD_NUMBER: _ClassVar[int]
    INJECTED_SIDE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_LEG_NRS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_BACK_NRS_FIELD_NUMBER: _ClassVar[int]
    DAYS_TO_FOLLOW_UP_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_PREDICTION_FIELD_NUMBER: _ClassVar[int]
    index: int
    episode_id: str
    patient_id: str
    split: Split
    study_id: str
    series_id: str
    series_content_sha256: str
    instance_sha256: _containers.RepeatedScalarFieldContainer[str]
    details: _records_pb2.EpisodeDetails
    injected_levels: _containers.RepeatedScalarFieldContainer[_common_pb2.SpinalLevel]
    injected_side: _common_pb2.Side
    follow_up_leg_nrs: int
    follow_up_back_nrs: int
    days_to_follow_up: int
    label: _records_pb2.Label
    champion_prediction: _records_pb2.PredictionRecord
    def __init__(self, index: _Optional[int] = ..., episode_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., split: _Optional[_Union[Split, str]] = ..., study_id: _Optional[str] = ..., series_id: _Optional[str] = ..., series_content_sha256: _Optional[str] = ..., instance_sha256: _Optional[_Iterable[str]] = ..., details: _Optional[_Union[_records_pb2.EpisodeDetails, _Mapping]] = ..., injected_levels: _Optional[_Iterable[_Union[_common_pb2.SpinalLevel, str]]] = ..., injected_side: _Optional[_Union[_common_pb2.Side, str]] = ..., follow_up_leg_nrs: _Optional[int] = ..., follow_up_back_nrs: _Optional[int] = ..., days_to_follow_up: _Optional[int] = ..., label: _Optional[_Union[_records_pb2.Label, _Mapping]] = ..., champion_prediction: _Optional[_Union[_records_pb2.PredictionRecord, _Mapping]] = ...) -> None: ...

class MetricSet(_message.Message):
    __slots__ = ("labeled_count", "positive_count", "auc", "auc_ci_lower", "auc_ci_upper", "brier", "calibration", "threshold", "sensitivity", "specificity", "true_positives", "false_positives", "true_negatives", "false_negatives")
    LABELED_COUNT_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    AUC_FIELD_NUMBER: _ClassVar[int]
    AUC_CI_LOWER_FIELD_NUMBER: _ClassVar[int]
    AUC_CI_UPPER_FIELD_NUMBER: _ClassVar[int]
    BRIER_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    SPECIFICITY_FIELD_NUMBER: _ClassVar[int]
    TRUE_POSITIVES_FIELD_NUMBER: _ClassVar[int]
    FALSE_POSITIVES_FIELD_NUMBER: _ClassVar[int]
    TRUE_NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    FALSE_NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    labeled_count: int
    positive_count: int
    auc: float
    auc_ci_lower: float
    auc_ci_upper: float
    brier: float
    calibration: _containers.RepeatedCompositeFieldContainer[CalibrationBin]
    threshold: float
    sensitivity: float
    specificity: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    def __init__(self, labeled_count: _Optional[int] = ..., positive_count: _Optional[int] = ..., auc: _Optional[float] = ..., auc_ci_lower: _Optional[float] = ..., auc_ci_upper: _Optional[float] = ..., brier: _Optional[float] = ..., calibration: _Optional[_Iterable[_Union[CalibrationBin, _Mapping]]] = ..., threshold: _Optional[float] = ..., sensitivity: _Optional[float] = ..., specificity: _Optional[float] = ..., true_positives: _Optional[int] = ..., false_positives: _Optional[int] = ..., true_negatives: _Optional[int] = ..., false_negatives: _Optional[int] = ...) -> None: ...

class CalibrationBin(_message.Message):
    __slots__ = ("lower", "upper", "count", "mean_predicted", "observed_rate")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_PREDICTED_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_RATE_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., count: _Optional[int] = ..., mean_predicted: _Optional[float] = ..., observed_rate: _Optional[float] = ...) -> None: ...

class PairedComparison(_message.Message):
    __slots__ = ("other_model", "shared_count", "subject", "other", "auc_difference", "auc_difference_ci_lower", "auc_difference_ci_upper")
    OTHER_MODEL_FIELD_NUMBER: _ClassVar[int]
    SHARED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    OTHER_FIELD_NUMBER: _ClassVar[int]
    AUC_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    AUC_DIFFERENCE_CI_LOWER_FIELD_NUMBER: _ClassVar[int]
    AUC_DIFFERENCE_CI_UPPER_FIELD_NUMBER: _ClassVar[int]
    other_model: _common_pb2.ModelRef
    shared_count: int
    subject: MetricSet
    other: MetricSet
    auc_difference: float
    auc_difference_ci_lower: float
    auc_difference_ci_upper: float
    def __init__(self, other_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., shared_count: _Optional[int] = ..., subject: _Optional[_Union[MetricSet, _Mapping]] = ..., other: _Optional[_Union[MetricSet, _Mapping]] = ..., auc_difference: _Optional[float] = ..., auc_difference_ci_lower: _Optional[float] = ..., auc_difference_ci_upper: _Optional[float] = ...) -> None: ...
