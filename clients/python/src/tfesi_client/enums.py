"""Short names of the contracts' enums, both ways.

Protobuf enum values are ints named like ``SPINAL_LEVEL_L4_L5``. The helpers accept a value
as that int, as its full name, or as its short name without the type prefix, in any case
(``"l4_l5"``, ``"L4_L5"``), and give short lowercase names back for exports.
"""

from __future__ import annotations

from typing import Protocol


class EnumType(Protocol):
    """What the generated enum wrappers provide (``common_pb2.SpinalLevel`` etc.)."""

    def Name(self, number: int) -> str: ...
    def Value(self, name: str) -> int: ...
    def keys(self) -> list[str]: ...


def _prefix(enum: EnumType) -> str:
    """The common prefix of the enum's names: the name of its zero value less UNSPECIFIED."""
    zero = enum.Name(0)
    return zero[: -len("UNSPECIFIED")] if zero.endswith("UNSPECIFIED") else ""


def enum_value(enum: EnumType, value: int | str) -> int:
    """The int of `value` (an int, a full name or a short name); ValueError if unknown."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an enum value")
    if isinstance(value, int):
        enum.Name(value)  # raises ValueError for an unknown number
        return value
    wanted = value.strip().upper().replace("-", "_")
    names = enum.keys()
    if wanted in names:
        return enum.Value(wanted)
    full = _prefix(enum) + wanted
    if full in names:
        return enum.Value(full)
    raise ValueError(f"{value!r} is none of {', '.join(short_names(enum))}")


def short_name(enum: EnumType, value: int) -> str | None:
    """Lowercase name without the prefix (``"l4_l5"``); None for the zero (UNSPECIFIED) value."""
    if value == 0:
        return None
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    prefix = _prefix(enum)
    return (name.removeprefix(prefix)).lower()


def short_names(enum: EnumType) -> list[str]:
    """Every short name of the enum except the zero value's."""
    prefix = _prefix(enum)
    return [n[len(prefix) :].lower() for n in enum.keys() if enum.Value(n) != 0]
