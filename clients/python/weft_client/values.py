"""Values between Python and weft: google.protobuf.Value as native types, and
durations and times.

weft's values are JSON, carried as google.protobuf.Value, whose numbers are
doubles. to_python() gives them back the way JSON readers do: a whole number
(up to 2**53, the last integer a double holds exactly) is an ``int``, any
other number a ``float``, objects ``dict``, lists ``list``, null ``None``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any, Optional, Union

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

# The largest magnitude up to which every integer is a double, so travels
# exactly as a JSON number.
MAX_EXACT_INT = 2**53

#: What the API takes wherever it wants a duration: seconds (int or float),
#: a timedelta, the JSON form of google.protobuf.Duration ("0.2s", "3600s")
#: or a Duration.
DurationLike = Union[int, float, str, datetime.timedelta, duration_pb2.Duration]

ProtoValue = Union[struct_pb2.Value, struct_pb2.Struct, struct_pb2.ListValue]


def to_python(value: ProtoValue) -> Any:
    """A google.protobuf.Value (or Struct, or ListValue) as a native value:
    None, bool, int (whole numbers within 2**53), float, str, list or dict.
    An unset Value is None."""
    if isinstance(value, struct_pb2.Struct):
        return {key: to_python(v) for key, v in value.fields.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [to_python(v) for v in value.values]
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= MAX_EXACT_INT:
            return int(number)
        return number
    if kind == "struct_value":
        return to_python(value.struct_value)
    if kind == "list_value":
        return to_python(value.list_value)
    return getattr(value, kind)  # bool_value or string_value


def to_value(obj: Any) -> struct_pb2.Value:
    """`obj` as a google.protobuf.Value: None, bool, int, float, str, a
    mapping with str keys, a list or tuple (nested as deep as weftd allows),
    a timedelta (as its JSON string, "1.5s", the form weft's duration
    arguments take) or a Value already.

    Raises ValueError for an int beyond 2**53 or a float that is not finite
    (JSON cannot carry them exactly), TypeError for anything else."""
    out = struct_pb2.Value()
    if isinstance(obj, struct_pb2.Value):
        out.CopyFrom(obj)
    elif obj is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        out.bool_value = obj
    elif isinstance(obj, int):
        if abs(obj) > MAX_EXACT_INT:
            raise ValueError("%d is beyond 2**53: a JSON number cannot carry it exactly; "
                             "send it as a string" % obj)
        out.number_value = obj
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError("%r is not a JSON number" % obj)
        out.number_value = obj
    elif isinstance(obj, str):
        out.string_value = obj
    elif isinstance(obj, datetime.timedelta):
        out.string_value = to_duration(obj).ToJsonString()
    elif isinstance(obj, Mapping):
        out.struct_value.CopyFrom(to_struct(obj))
    elif isinstance(obj, (list, tuple)):
        out.list_value.values.extend(to_value(v) for v in obj)
    else:
        raise TypeError("%s is not a JSON value" % type(obj).__name__)
    return out


def to_struct(mapping: Mapping[str, Any]) -> struct_pb2.Struct:
    """A mapping with str keys as a google.protobuf.Struct (see to_value)."""
    out = struct_pb2.Struct()
    for key, v in mapping.items():
        if not isinstance(key, str):
            raise TypeError("object keys must be str, not %s (%r)" % (type(key).__name__, key))
        out.fields[key].CopyFrom(to_value(v))
    return out


def to_duration(value: DurationLike) -> duration_pb2.Duration:
    """A DurationLike as a google.protobuf.Duration."""
    out = duration_pb2.Duration()
    if isinstance(value, duration_pb2.Duration):
        out.CopyFrom(value)
    elif isinstance(value, datetime.timedelta):
        out.FromTimedelta(value)
    elif isinstance(value, str):
        out.FromJsonString(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.FromNanoseconds(round(value * 1e9))
    else:
        raise TypeError("a duration is seconds, a timedelta or a string like \"0.2s\", not %s"
                        % type(value).__name__)
    return out


def to_seconds(value: Optional[DurationLike]) -> Optional[float]:
    """A DurationLike as seconds (gRPC's timeouts); None stays None."""
    if value is None:
        return None
    return to_duration(value).ToNanoseconds() / 1e9


def to_datetime(timestamp: timestamp_pb2.Timestamp) -> datetime.datetime:
    """A google.protobuf.Timestamp as an aware datetime in UTC."""
    return timestamp.ToDatetime(tzinfo=datetime.timezone.utc)
