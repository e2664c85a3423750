"""Enum arguments by number or by name, with or without their prefix."""

from __future__ import annotations

from typing import Union

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

EnumLike = Union[int, str]


def enum_value(enum: EnumTypeWrapper, prefix: str, value: EnumLike) -> int:
    """The number of `value` in `enum`: a number, or a name with or without
    `prefix`, in any case ("all_settled", "JOIN_ALL_SETTLED"). ValueError for
    a name `enum` does not have."""
    if isinstance(value, int):
        return value
    name = value.upper()
    if not name.startswith(prefix):
        name = prefix + name
    return enum.Value(name)
