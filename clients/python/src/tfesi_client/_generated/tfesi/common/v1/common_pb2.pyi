from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpinalLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPINAL_LEVEL_UNSPECIFIED: _ClassVar[SpinalLevel]
    SPINAL_LEVEL_L1_L2: _ClassVar[SpinalLevel]
    SPINAL_LEVEL_L2_L3: _ClassVar[SpinalLevel]
    SPINAL_LEVEL_L3_L4: _ClassVar[SpinalLevel]
    SPINAL_LEVEL_L4_L5: _ClassVar[SpinalLevel]
    SPINAL_LEVEL_L5_S1: _ClassVar[SpinalLevel]
    SPINAL_LEVEL_S1: _ClassVar[SpinalLevel]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_LEFT: _ClassVar[Side]
    SIDE_RIGHT: _ClassVar[Side]
    SIDE_BILATERAL: _ClassVar[Side]

class Indication(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDICATION_UNSPECIFIED: _ClassVar[Indication]
    INDICATION_HERNIATED_DISC: _ClassVar[Indication]
    INDICATION_SPINAL_STENOSIS: _ClassVar[Indication]

class Sex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEX_UNSPECIFIED: _ClassVar[Sex]
    SEX_FEMALE: _ClassVar[Sex]
    SEX_MALE: _ClassVar[Sex]
    SEX_OTHER: _ClassVar[Sex]

class OutcomeLabel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_LABEL_UNSPECIFIED: _ClassVar[OutcomeLabel]
    OUTCOME_LABEL_GOOD: _ClassVar[OutcomeLabel]
    OUTCOME_LABEL_POOR: _ClassVar[OutcomeLabel]

class ExecutionProvider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_PROVIDER_UNSPECIFIED: _ClassVar[ExecutionProvider]
    EXECUTION_PROVIDER_CPU: _ClassVar[ExecutionProvider]
    EXECUTION_PROVIDER_CUDA: _ClassVar[ExecutionProvider]

class ModelRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_ROLE_UNSPECIFIED: _ClassVar[ModelRole]
    MODEL_ROLE_CHAMPION: _ClassVar[ModelRole]
    MODEL_ROLE_SHADOW: _ClassVar[ModelRole]
    MODEL_ROLE_EXPLICIT: _ClassVar[ModelRole]

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    D_TYPE_UNSPECIFIED: _ClassVar[DType]
    D_TYPE_FLOAT32: _ClassVar[DType]
SPINAL_LEVEL_UNSPECIFIED: SpinalLevel
SPINAL_LEVEL_L1_L2: SpinalLevel
SPINAL_LEVEL_L2_L3: SpinalLevel
SPINAL_LEVEL_L3_L4: SpinalLevel
SPINAL_LEVEL_L4_L5: SpinalLevel
SPINAL_LEVEL_L5_S1: SpinalLevel
SPINAL_LEVEL_S1: SpinalLevel
SIDE_UNSPECIFIED: Side
SIDE_LEFT: Side
SIDE_RIGHT: Side
SIDE_BILATERAL: Side
INDICATION_UNSPECIFIED: Indication
INDICATION_HERNIATED_DISC: Indication
INDICATION_SPINAL_STENOSIS: Indication
SEX_UNSPECIFIED: Sex
SEX_FEMALE: Sex
SEX_MALE: Sex
SEX_OTHER: Sex
OUTCOME_LABEL_UNSPECIFIED: OutcomeLabel
OUTCOME_LABEL_GOOD: OutcomeLabel
OUTCOME_LABEL_POOR: OutcomeLabel
EXECUTION_PROVIDER_UNSPECIFIED: ExecutionProvider
EXECUTION_PROVIDER_CPU: ExecutionProvider
EXECUTION_PROVIDER_CUDA: ExecutionProvider
MODEL_ROLE_UNSPECIFIED: ModelRole
MODEL_ROLE_CHAMPION: ModelRole
MODEL_ROLE_SHADOW: ModelRole
MODEL_ROLE_EXPLICIT: ModelRole
D_TYPE_UNSPECIFIED: DType
D_TYPE_FLOAT32: DType

class Date(_message.Message):
    __slots__ = ("year", "month", "day")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    year: int
    month: int
    day: int
    def __init__(self, year: _Optional[int] = ..., month: _Optional[int] = ..., day: _Optional[int] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("shape", "dtype", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("shape", "dtype", "size_bytes", "sha256", "spec_version")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    size_bytes: int
    sha256: str
    spec_version: str
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., spec_version: _Optional[str] = ...) -> None: ...

class ClinicalFeature(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class PageRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class PageResponse(_message.Message):
    __slots__ = ("next_page_token", "total_size")
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    total_size: int
    def __init__(self, next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...
